//! `cni-install`: installs this workspace's plugins on a node and chains them
//! into the network the node already has, the way a DaemonSet agent does.
//!
//! - `conflist`: the pure editing (which file runtimes load, chain, unchain);
//! - `json`: an order-keeping JSON value and Go's key lookups;
//! - `files`: every file effect (atomic writes, verified plugin copies);
//! - `node`: sequencing and the record of what we changed;
//! - `watch`: the inotify + signal loop; `cli`: settings.

pub mod cli;
pub mod conflist;
pub mod error;
pub mod files;
pub mod json;
pub mod node;
pub mod watch;

use clap::Parser;

use cli::{Cli, Cmd};
use error::InstallError;
use node::{Node, Status};

/// The whole program; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cni-install: {e}");
            1
        }
    }
}

fn run(command: Cmd) -> Result<(), InstallError> {
    match command {
        Cmd::Ready { readiness_file } => {
            if readiness_file.exists() {
                Ok(())
            } else {
                Err(InstallError::Settings(format!(
                    "not ready: {} does not exist",
                    readiness_file.display()
                )))
            }
        }
        Cmd::Once(settings) => {
            let mut node = Node::new(&settings)?;
            report_copies(&node)?;
            match node.reconcile()? {
                Status::Chained { .. } => Ok(()),
                Status::NoNetwork => Err(InstallError::Settings(format!(
                    "no network to chain into in {}",
                    settings.conf_dir.display()
                ))),
            }
        }
        Cmd::Run(settings) => {
            let signals = watch::block_exit_signals()?;
            let mut node = Node::new(&settings)?;
            report_copies(&node)?;
            watch::run(
                &mut node,
                &signals,
                &settings.readiness_file,
                settings.cleanup_on_exit,
            )
        }
    }
}

fn report_copies(node: &Node) -> Result<(), InstallError> {
    for (name, outcome) in node.install_plugins()? {
        eprintln!("cni-install: {name}: {outcome:?}");
    }
    Ok(())
}
