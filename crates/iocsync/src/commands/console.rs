//! `iocsync console add-user` / `remove-user`: the local users file of the analyst console.

use crate::cli::ConsoleCommand;
use crate::config::{Config, ConsoleAuth, Role};
use crate::console::users::UsersFile;
use std::path::PathBuf;

/// What a users command changed (its JSON document).
#[derive(Debug, serde::Serialize)]
pub struct UsersChange {
    /// `added`, `updated` or `removed`.
    pub change: &'static str,
    /// User name.
    pub user: String,
    /// Role after the change (none for a removal).
    pub role: Option<Role>,
    /// The users file written.
    pub file: PathBuf,
}

/// Runs one `console` subcommand.
pub fn run(config: &Config, cmd: &ConsoleCommand) -> anyhow::Result<UsersChange> {
    let ConsoleAuth::Local { users_file } = &config.console.auth else {
        anyhow::bail!(
            "[console] auth = \"proxy\": users and roles come from the proxy and console.proxy_roles, not a users file"
        );
    };
    let mut users = UsersFile::load(users_file)?;
    match cmd {
        ConsoleCommand::AddUser(args) => {
            let role: Role = args.role.parse().map_err(anyhow::Error::msg)?;
            let password = if args.password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                let first = rpassword::prompt_password(format!("Password for {}: ", args.name))?;
                let again = rpassword::prompt_password("Again: ")?;
                if first != again {
                    anyhow::bail!("the two passwords differ: nothing was changed");
                }
                first
            };
            let existed = users.users.iter().any(|u| u.name == args.name.trim());
            users.upsert(&args.name, role, &password)?;
            users.save(users_file)?;
            Ok(UsersChange {
                change: if existed { "updated" } else { "added" },
                user: args.name.trim().to_owned(),
                role: Some(role),
                file: users_file.clone(),
            })
        }
        ConsoleCommand::RemoveUser { name } => {
            let before = users.users.len();
            users.users.retain(|u| u.name != *name);
            if users.users.len() == before {
                anyhow::bail!("there is no user {name} in {}", users_file.display());
            }
            users.save(users_file)?;
            Ok(UsersChange { change: "removed", user: name.clone(), role: None, file: users_file.clone() })
        }
    }
}
