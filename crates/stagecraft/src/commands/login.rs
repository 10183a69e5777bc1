//! `login` and `logout`: registry credentials in docker's config, where pulls, pushes and
//! cache transfers find them (see [`stagecraft_registry::credentials`]).

use super::runtime::{block_on, registry};
use super::{CommandError, CommandResult};
use stagecraft_registry::credentials::{DockerConfig, credential_key, registry_host};
use std::io::{IsTerminal, Read};

/// `stagecraft login [SERVER]`.
#[derive(clap::Args)]
pub(crate) struct LoginArgs {
    /// The registry (default: Docker Hub).
    server: Option<String>,
    /// The user name.
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// The password (visible to other users of this machine in the process list: prefer
    /// --password-stdin).
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Registries to reach over plain HTTP (localhost and 127.0.0.0/8 always are).
    #[arg(long = "insecure-registry")]
    insecure: Vec<String>,
}

/// `stagecraft logout [SERVER]`.
#[derive(clap::Args)]
pub(crate) struct LogoutArgs {
    /// The registry (default: Docker Hub).
    server: Option<String>,
}

/// Runs `stagecraft login`: the registry must accept the credentials before they are kept.
pub(crate) fn login(args: &LoginArgs) -> CommandResult {
    let key = credential_key(args.server.as_deref().unwrap_or_default());
    let username = args.username.clone().ok_or_else(|| {
        CommandError("error: pass the user name with -u (stagecraft does not prompt)".to_owned())
    })?;
    let password = match (&args.password, args.password_stdin) {
        (Some(password), _) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            password.clone()
        }
        (None, true) => {
            if std::io::stdin().is_terminal() {
                return Err(CommandError(
                    "error: --password-stdin, but standard input is a terminal\n  = help: pipe the password: echo \"$TOKEN\" | stagecraft login -u USER --password-stdin".to_owned(),
                ));
            }
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
        (None, false) => {
            return Err(CommandError(
                "error: pass the password with --password-stdin (or -p); stagecraft does not prompt".to_owned(),
            ));
        }
    };
    if password.is_empty() {
        return Err(CommandError("error: the password is empty".to_owned()));
    }
    block_on(registry(&args.insecure).check_login(registry_host(&key), &username, &password))??;
    let place = DockerConfig::open()?.store(&key, &username, &password)?;
    eprintln!("credentials for {key} saved in {place}");
    println!("Login Succeeded");
    Ok(())
}

/// Runs `stagecraft logout`.
pub(crate) fn logout(args: &LogoutArgs) -> CommandResult {
    let key = credential_key(args.server.as_deref().unwrap_or_default());
    if DockerConfig::open()?.erase(&key)? {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(())
}
