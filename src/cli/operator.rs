//! `tenantry operator ...`: operator accounts and their tokens. Every change is audited
//! (`operator.*.v1`, actor `system:cli`).

use std::process::ExitCode;

use clap::Subcommand;

use super::{Outcome, StoreArgs, call, fail};
use crate::admin::AdminRequest;

/// `tenantry operator ...`. Every change is audited (`operator.*.v1`, actor `system:cli`).
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator; the password is read from the first line of stdin.
    Add {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username (3-32 characters of a-z, 0-9, '.', '_', '-').
        #[arg(long)]
        username: String,
        /// Role: super_admin, technical_admin, business_admin, compliance or support.
        #[arg(long)]
        role: String,
        /// Display name (the username by default).
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from stdin (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List operators.
    List {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change an operator's role (their sessions end at once).
    SetRole {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
        /// The new role.
        #[arg(long)]
        role: String,
    },
    /// Disable an operator (sessions end, tokens stop working).
    Disable {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
    },
    /// Re-enable a disabled operator.
    Enable {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
    },
    /// Set an operator's password, read from the first line of stdin.
    SetPassword {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
        /// Read the password from stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Operator tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `tenantry operator token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token acting with the operator's role; prints it once.
    Create {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
        /// What the token is for, e.g. ci-pipeline.
        #[arg(long)]
        name: String,
    },
}

/// Runs `tenantry operator ...`.
pub(super) async fn run(cmd: OperatorCommand) -> ExitCode {
    let (store, req) = match cmd {
        OperatorCommand::Add {
            store,
            username,
            role,
            display_name,
            password_stdin: _,
        } => match read_password() {
            Ok(password) => (
                store,
                AdminRequest::OperatorAdd {
                    username,
                    display_name,
                    role,
                    password,
                },
            ),
            Err(c) => return c,
        },
        OperatorCommand::List { store } => (store, AdminRequest::OperatorList),
        OperatorCommand::SetRole {
            store,
            username,
            role,
        } => (store, AdminRequest::OperatorSetRole { username, role }),
        OperatorCommand::Disable { store, username } => (
            store,
            AdminRequest::OperatorSetDisabled {
                username,
                disabled: true,
            },
        ),
        OperatorCommand::Enable { store, username } => (
            store,
            AdminRequest::OperatorSetDisabled {
                username,
                disabled: false,
            },
        ),
        OperatorCommand::SetPassword {
            store, username, ..
        } => match read_password() {
            Ok(password) => (
                store,
                AdminRequest::OperatorSetPassword { username, password },
            ),
            Err(c) => return c,
        },
        OperatorCommand::Token(TokenCommand::Create {
            store,
            username,
            name,
        }) => (store, AdminRequest::OperatorTokenCreate { username, name }),
    };
    let list = matches!(req, AdminRequest::OperatorList);
    let token = matches!(req, AdminRequest::OperatorTokenCreate { .. });
    match call(&store, req).await {
        Ok(Outcome::Json(v)) if list => {
            println!(
                "{:<24} {:<16} {:<9} DISPLAY NAME",
                "USERNAME", "ROLE", "STATUS"
            );
            for o in v.as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<16} {:<9} {}",
                    o["username"].as_str().unwrap_or(""),
                    o["role"].as_str().unwrap_or(""),
                    if o["disabled"] == true {
                        "disabled"
                    } else {
                        "active"
                    },
                    o["display_name"].as_str().unwrap_or("")
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Outcome::Json(v)) if token => {
            println!("{}", v["token"].as_str().unwrap_or(""));
            eprintln!(
                "This token is shown once; only its hash is stored. It acts with the operator's role."
            );
            ExitCode::SUCCESS
        }
        Ok(Outcome::Json(v)) => {
            println!(
                "{} {} ({})",
                v["username"].as_str().unwrap_or(""),
                v["role"].as_str().unwrap_or(""),
                if v["disabled"] == true {
                    "disabled"
                } else {
                    "active"
                }
            );
            ExitCode::SUCCESS
        }
        Ok(Outcome::Stream) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn read_password() -> Result<String, ExitCode> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| fail(&format!("reading the password from stdin: {e}")))?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(fail("no password on stdin (give it on the first line)"));
    }
    Ok(pw)
}
