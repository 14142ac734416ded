//! pmipctl: show commands, `clear binding` and `shutdown` against a running pmipd.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pmip_user::ctl::{self, Request, Response};

#[derive(Parser)]
#[command(about = "Query and control a running pmipd")]
struct Cli {
    /// pmipd's control socket.
    #[arg(long, short, default_value = "/run/pmipd.sock")]
    socket: PathBuf,
    /// Print the daemon's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// show bindings | tunnels | stats | cluster
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// clear binding <NAI>: force a detach.
    Clear {
        #[command(subcommand)]
        what: Clear,
    },
    /// Stop pmipd. Plain: as SIGTERM, subscribers stay registered and the
    /// pinned fast path keeps forwarding (a restart). With --deregister:
    /// release every subscriber, then remove the programs and pins.
    Shutdown {
        #[arg(long)]
        deregister: bool,
    },
}

#[derive(Subcommand)]
enum Show {
    Bindings,
    Tunnels,
    Stats,
    /// Anchor cluster: members, address owners, bindings per anchor, etcd health.
    Cluster,
}

#[derive(Subcommand)]
enum Clear {
    Binding { nai: String },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pmipctl: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let req = match cli.cmd {
        Cmd::Show {
            what: Show::Bindings,
        } => Request::ShowBindings,
        Cmd::Show {
            what: Show::Tunnels,
        } => Request::ShowTunnels,
        Cmd::Show { what: Show::Stats } => Request::ShowStats,
        Cmd::Show {
            what: Show::Cluster,
        } => Request::ShowCluster,
        Cmd::Clear {
            what: Clear::Binding { nai },
        } => Request::ClearBinding { nai },
        Cmd::Shutdown { deregister } => Request::Shutdown { deregister },
    };
    let resp = ctl::request_blocking(&cli.socket, &req, Duration::from_secs(5))?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    } else {
        print!("{}", ctl::format_response(&resp));
    }
    Ok(if let Response::Error { .. } = resp {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}
