# shellcheck shell=bash
# ensure_chromium: make headless Chromium and chromedriver available for the example app's
# browser test (examples/axum_app/tests/example_app_in_chromium.rs), installing Debian's `chromium` and
# `chromium-driver` with apt when either is missing. CHROMIUM and CHROMEDRIVER name other paths
# (default /usr/bin/chromium, /usr/bin/chromedriver); a path that is set but missing is an error,
# not something to install over. Uses as_root from postgres.sh.

ensure_chromium() {
  local chromium=${CHROMIUM:-/usr/bin/chromium} driver=${CHROMEDRIVER:-/usr/bin/chromedriver}
  if [ -x "$chromium" ] && [ -x "$driver" ]; then return 0; fi
  if [ -n "${CHROMIUM:-}${CHROMEDRIVER:-}" ]; then
    echo "ensure_chromium: CHROMIUM=$chromium or CHROMEDRIVER=$driver is not an executable" >&2
    return 1
  fi
  echo "ensure_chromium: installing chromium and chromium-driver with apt" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  if ! [ -x "$chromium" ] || ! [ -x "$driver" ]; then
    echo "ensure_chromium: apt installed no $chromium and $driver; install Chromium and chromedriver, or set CHROMIUM and CHROMEDRIVER" >&2
    return 1
  fi
}
