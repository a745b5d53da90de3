//! The chart: operations per second per operation per stack, one panel per concurrency, as a
//! plain SVG (no font or image dependencies).

use std::fmt::Write;

use crate::stacks::Op;

pub struct Series {
    pub name: String,
    pub color: &'static str,
    /// Operations per second for each `Op::ALL`, per panel.
    pub values: Vec<[f64; 4]>,
}

const W: f64 = 1200.0;
const H: f64 = 560.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 150.0;
const LEFT: f64 = 80.0;
const GAP: f64 = 70.0;

fn nice_max(max: f64) -> (f64, f64) {
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn render(title: &str, panels: &[&str], series: &[Series]) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="30" font-size="20" text-anchor="middle" font-weight="bold">{}</text>
"#,
        W / 2.0,
        escape(title)
    );
    let panel_w = (W - LEFT - GAP * panels.len() as f64) / panels.len() as f64;
    let plot_h = H - TOP - BOTTOM;
    for (p, panel) in panels.iter().enumerate() {
        let x0 = LEFT + p as f64 * (panel_w + GAP);
        let max = series
            .iter()
            .flat_map(|s| s.values[p].iter().copied())
            .fold(1.0, f64::max);
        let (top, step) = nice_max(max);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="16" text-anchor="middle">{}</text>"#,
            x0 + panel_w / 2.0,
            TOP - 12.0,
            escape(panel)
        );
        let mut tick = 0.0;
        while tick <= top + step / 2.0 {
            let y = TOP + plot_h * (1.0 - tick / top);
            let _ = writeln!(
                svg,
                r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" font-size="12" text-anchor="end">{}</text>"##,
                x0 + panel_w,
                x0 - 6.0,
                y + 4.0,
                format_thousands(tick)
            );
            tick += step;
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 {} {})">operations per second</text>"#,
            x0 - 58.0,
            TOP + plot_h / 2.0,
            x0 - 58.0,
            TOP + plot_h / 2.0
        );
        let group_w = panel_w / Op::ALL.len() as f64;
        let bar_w = group_w * 0.8 / series.len() as f64;
        for (o, op) in Op::ALL.iter().enumerate() {
            let gx = x0 + o as f64 * group_w + group_w * 0.1;
            for (s, serie) in series.iter().enumerate() {
                let v = serie.values[p][o];
                let h = plot_h * v / top;
                let _ = writeln!(
                    svg,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {} {:.0} ops/s</title></rect>"#,
                    gx + s as f64 * bar_w,
                    TOP + plot_h - h,
                    bar_w - 1.0,
                    h,
                    serie.color,
                    escape(&serie.name),
                    op.name(),
                    v
                );
            }
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" font-size="14" text-anchor="middle">{}</text>"#,
                gx + group_w * 0.4,
                TOP + plot_h + 20.0,
                op.name()
            );
        }
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
            TOP + plot_h,
            x0 + panel_w,
            TOP + plot_h
        );
    }
    // Legend, two columns under the panels.
    let per_col = series.len().div_ceil(2);
    for (s, serie) in series.iter().enumerate() {
        let x = LEFT + (s / per_col) as f64 * (W - LEFT) / 2.0;
        let y = H - BOTTOM + 50.0 + (s % per_col) as f64 * 22.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="14" height="14" fill="{}"/><text x="{}" y="{}" font-size="14">{}</text>"#,
            y - 12.0,
            serie.color,
            x + 20.0,
            y,
            escape(&serie.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_thousands(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
