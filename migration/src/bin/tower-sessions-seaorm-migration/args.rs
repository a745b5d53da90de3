//! The command line's arguments.

use clap::{Parser, Subcommand};
use tower_sessions_seaorm_migration::{DEFAULT_SCHEMA, DEFAULT_TABLE};

/// Creates, migrates and drops tower-sessions-seaorm-store's session table, counts and ends
/// its sessions, and nothing else.
///
/// Every command acts on the session table alone (its columns, indexes and triggers, the read
/// cache's eviction function on PostgreSQL) and on its own rows of the history table
/// `seaql_migrations_tower_sessions`, which the store's `migrate()` shares: the two can be
/// mixed. Your application's tables and its `seaql_migrations` are never touched.
#[derive(Debug, Parser)]
#[command(name = "tower-sessions-seaorm-migration", version)]
pub struct Cli {
    /// The database: postgres://…, mysql://… (MySQL or MariaDB) or sqlite://…?mode=rwc
    #[arg(
        short = 'u',
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// The session table's schema, on PostgreSQL (SQLite and MySQL keep the table in the
    /// connection's database and ignore it)
    #[arg(short = 's', long, default_value = DEFAULT_SCHEMA, global = true)]
    pub schema: String,

    /// The session table's name, as given to the store's `with_table_name`
    #[arg(short = 't', long, default_value = DEFAULT_TABLE, global = true)]
    pub table: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the session table's pending migrations (creating the table if it is missing)
    Up {
        /// How many to apply (default: all)
        #[arg(short, long)]
        num: Option<u32>,
        /// Also create the login history beside the table (`<table>_history`, for the store's
        /// `with_login_history`), if missing
        #[arg(long)]
        login_history: bool,
    },
    /// Roll back the session table's last applied migrations, newest first; rolling back the
    /// first one drops the session table, and every session with it
    Down {
        /// How many to roll back
        #[arg(short, long, default_value_t = 1)]
        num: u32,
    },
    /// List the session table's migrations, applied or pending; changes nothing
    Status,
    /// Roll back all of the session table's migrations: drops the session table (everyone is
    /// logged out) and removes its history rows
    Reset,
    /// `reset`, then `up`: an empty session table, freshly migrated
    Refresh,
    /// Count or end sessions in the session table (its rows only; with the login history
    /// beside it, each session ended is logged there)
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Not offered: see the message
    #[command(hide = true)]
    Fresh {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        ignored: Vec<String>,
    },
    /// Not offered: see the message
    #[command(hide = true)]
    Init {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        ignored: Vec<String>,
    },
    /// Not offered: see the message
    #[command(hide = true)]
    Generate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        ignored: Vec<String>,
    },
}

/// What `sessions` does.
#[derive(Debug, Clone, Subcommand)]
pub enum SessionsCommand {
    /// Print how many sessions are live (not expired), all or one user's
    Count {
        /// Only this user's sessions (the per-user index's key: the value of the session key
        /// the store's `with_user_key` names)
        #[arg(long)]
        user: Option<String>,
    },
    /// End sessions: every session of one user (`--user`), every session created before an
    /// instant (`--created-before`), or both conditions at once
    Revoke {
        /// End this user's sessions
        #[arg(long)]
        user: Option<String>,
        /// End the sessions created strictly before this instant, RFC 3339
        /// (`2026-12-04T14:00:00Z`)
        #[arg(long)]
        created_before: Option<String>,
        /// End every session: give the session table's name to confirm (`schema.table` on
        /// PostgreSQL, e.g. `tower_sessions.session`; the table's name elsewhere)
        #[arg(long, value_name = "TABLE", conflicts_with_all = ["user", "created_before"])]
        all: Option<String>,
        /// Print how many sessions would end, and end none
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete the expired sessions (what the store's cleanup does)
    PurgeExpired {
        /// Print how many sessions would go, and delete none
        #[arg(long)]
        dry_run: bool,
    },
}

/// What a command does.
pub enum Action {
    /// Apply this many pending migrations, all with `None`; with `true`, then create the login
    /// history if missing.
    Up(Option<u32>, bool),
    /// Roll back this many applied migrations, all with `None`.
    Down(Option<u32>),
    Status,
    /// Roll back all, then apply all.
    Refresh,
    /// Count or end sessions.
    Sessions(SessionsCommand),
}

impl Command {
    /// What the command does, or why SeaORM's commands that do not fit a session table are
    /// refused and what to run instead.
    pub fn action(&self) -> Result<Action, &'static str> {
        match self {
            Self::Up { num, login_history } => Ok(Action::Up(*num, *login_history)),
            Self::Down { num } => Ok(Action::Down(Some(*num))),
            Self::Status => Ok(Action::Status),
            Self::Reset => Ok(Action::Down(None)),
            Self::Refresh => Ok(Action::Refresh),
            Self::Sessions { command } => Ok(Action::Sessions(command.clone())),
            Self::Fresh { .. } => Err(
                "`fresh` is not offered: SeaORM's `fresh` drops every table in the database, \
                 your application's included, and this tool touches the session table alone. \
                 To recreate the session table, run `refresh` (it drops the session table and \
                 its history rows, then migrates it again); to start your whole database \
                 afresh, use your application's own migrator. Nothing was done.",
            ),
            Self::Init { .. } | Self::Generate { .. } => Err(
                "`init` and `generate` are not offered: they write a migration crate, and this \
                 tool runs the session table's migrations only. For your application's own \
                 migrations use sea-orm-cli (`sea-orm-cli migrate init`, `sea-orm-cli migrate \
                 generate <name>`); to create the session table with them, add this crate's \
                 migrations to your Migrator (see the crate's documentation). Nothing was done.",
            ),
        }
    }
}
