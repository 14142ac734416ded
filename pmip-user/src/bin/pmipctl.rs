//! pmipctl: show commands, `clear binding`, `reload` and `shutdown` against a running pmipd.
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use pmip_user::ctl::{self, Request, Response};

/// Exit statuses scripts can rely on (also in `--help`).
mod status {
    /// The daemon answered and did what was asked.
    pub const OK: u8 = 0;
    /// The daemon answered with an error (e.g. a reload it refused).
    pub const REFUSED: u8 = 1;
    /// The daemon could not be reached (no socket, not running, no answer).
    pub const UNREACHABLE: u8 = 2;
    /// `clear binding`: no binding for that NAI.
    pub const NOT_FOUND: u8 = 4;
    /// The command line was wrong (sysexits.h EX_USAGE).
    pub const USAGE: u8 = 64;
}

fn version() -> String {
    match pmip_user::fastpath::EMBEDDED_BUILD_ID {
        Some(id) => format!(
            "{} (built with pmipd's eBPF object, build id {id})",
            env!("CARGO_PKG_VERSION")
        ),
        None => format!("{} (no eBPF object built in)", env!("CARGO_PKG_VERSION")),
    }
}

#[derive(Parser)]
#[command(
    name = "pmipctl",
    about = "Query and control a running pmipd",
    version = version(),
    after_help = "Exit status: 0 done; 1 pmipd refused the request (the message says why); \
                  2 pmipd not reachable (no socket, not running, no answer); \
                  4 clear binding: no binding for that NAI; 64 usage error."
)]
struct Cli {
    /// pmipd's control socket (its `control.socket`).
    #[arg(long, short, global = true, default_value = "/run/pmip/pmipd.sock")]
    socket: PathBuf,
    /// Print the daemon's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the gateway's state: bindings, tunnels, counters, AAA, cluster.
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// Force a detach: `clear binding NAI`.
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
    /// Re-read pmipd's configuration file and apply what can change while it
    /// runs (access side: profiles, dhcp.dns); anything else that changed is
    /// refused as a whole (exit status 1) and nothing changes. What
    /// `systemctl reload pmipd` runs.
    Reload,
    /// Check that pmipd's event loop and registrar answer (exit status 0 if so).
    Ping,
    /// Write man pages and shell completions for pmipctl into DIR.
    #[command(hide = true)]
    Generate { dir: PathBuf },
}

#[derive(Subcommand)]
enum Show {
    /// Every binding: subscriber (NAI, MAC), state, interface, home address
    /// or prefix, peer, lifetime left, GRE keys (the Cisco `show ipv6 mobile
    /// pmipv6 mag binding` layout).
    Bindings {
        /// Only this subscriber (its NAI, exactly).
        #[arg(long)]
        nai: Option<String>,
        /// Only the bindings through this peer (a `[[peers]]` name or an
        /// address: the MAG/PMA on an anchor, the LMA/HA on an access gateway).
        #[arg(long)]
        peer: Option<String>,
        /// Counts only: the total, by state and by peer.
        #[arg(long)]
        summary: bool,
    },
    /// The tunnels to each peer and how many bindings use them.
    Tunnels,
    /// Every counter group (registrar, its socket, DHCP and ARP per access
    /// link, fast-path verdicts, map occupancy) and each subscriber's
    /// traffic.
    Stats {
        /// Repeat every N seconds, with each counter's rate per second since
        /// the previous sample (as `watch` would); Ctrl-C stops.
        #[arg(long, short, value_name = "N")]
        interval: Option<u64>,
        /// With --interval: stop after this many samples.
        #[arg(long, requires = "interval")]
        count: Option<u64>,
    },
    /// The counters of `show stats` without the per-subscriber table, with
    /// bindings by state: what the metrics endpoint exports.
    Counters,
    /// RADIUS servers, accounting and dynamic authorization counters.
    Aaa,
    /// Anchor cluster: members, address owners, bindings per anchor, etcd health.
    Cluster,
}

#[derive(Subcommand)]
enum Clear {
    /// Deregister the subscriber NAI (anchor side: revocation to the access
    /// gateway). On a MAG, also forget what an LMA refused it until an
    /// administrative action (PBA status 152, 170, 172; RFC 5213 §6.9.1.2).
    Binding { nai: String },
    /// Anchor role: release every binding through one access gateway — a
    /// MAG gets one global Binding Revocation Indication (RFC 5846 §8.1), a
    /// PMA one revocation per binding (RFC 3543) — e.g. before taking it
    /// out of service.
    Bindings {
        /// The access gateway: a `[[peers]]` name or its address.
        #[arg(long)]
        peer: String,
        /// Only the NAIs of this realm (the part after the last '@').
        #[arg(long)]
        realm: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                status::USAGE
            } else {
                status::OK
            });
        }
    };
    let r = match cli.cmd {
        Cmd::Generate { ref dir } => {
            match pmip_user::cli_docs::generate(Cli::command(), "8", dir) {
                Ok(()) => Ok(status::OK),
                Err(e) => Err(e),
            }
        }
        Cmd::Show {
            what:
                Show::Stats {
                    interval: Some(n),
                    count,
                },
        } => watch(&cli, Duration::from_secs(n.max(1)), count),
        _ => once(&cli),
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("pmipctl: {e:#}");
            ExitCode::from(status::UNREACHABLE)
        }
    }
}

fn request_of(cmd: &Cmd) -> Request {
    match cmd {
        Cmd::Show {
            what: Show::Bindings { nai, peer, summary },
        } => Request::ShowBindings(ctl::BindingQuery {
            nai: nai.clone(),
            peer: peer.clone(),
            summary: *summary,
        }),
        Cmd::Show {
            what: Show::Tunnels,
        } => Request::ShowTunnels,
        Cmd::Show {
            what: Show::Stats { .. },
        } => Request::ShowStats,
        Cmd::Show {
            what: Show::Counters,
        } => Request::ShowCounters,
        Cmd::Show {
            what: Show::Cluster,
        } => Request::ShowCluster,
        Cmd::Clear {
            what: Clear::Binding { nai },
        } => Request::ClearBinding { nai: nai.clone() },
        Cmd::Clear {
            what: Clear::Bindings { peer, realm },
        } => Request::ClearPeer {
            peer: peer.clone(),
            realm: realm.clone(),
        },
        Cmd::Show { what: Show::Aaa } => Request::ShowAaa,
        Cmd::Shutdown { deregister } => Request::Shutdown {
            deregister: *deregister,
        },
        Cmd::Reload => Request::Reload,
        Cmd::Ping | Cmd::Generate { .. } => Request::Ping,
    }
}

fn ask(cli: &Cli, req: &Request) -> anyhow::Result<Response> {
    // A reload reads and checks the whole file: give it longer.
    let timeout = match req {
        Request::Reload => Duration::from_secs(30),
        _ => Duration::from_secs(5),
    };
    ctl::request_blocking(&cli.socket, req, timeout)
}

fn once(cli: &Cli) -> anyhow::Result<u8> {
    let resp = ask(cli, &request_of(&cli.cmd))?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
    } else if let Response::Error { message } = &resp {
        eprintln!("pmipctl: {message}");
    } else {
        print!("{}", ctl::format_response(&resp));
    }
    Ok(match resp {
        Response::Error { .. } => status::REFUSED,
        Response::Cleared {
            found: false,
            refusal: false,
            ..
        }
        | Response::ClearedPeer { bindings: 0, .. } => status::NOT_FOUND,
        _ => status::OK,
    })
}

/// `show stats --interval N`: a sample every N seconds with rates.
fn watch(cli: &Cli, every: Duration, count: Option<u64>) -> anyhow::Result<u8> {
    let clear = !cli.json && std::io::stdout().is_terminal();
    let mut prev: Option<(Instant, ctl::StatsView)> = None;
    let mut n = 0u64;
    loop {
        let t = Instant::now();
        let resp = ask(cli, &Request::ShowStats)?;
        let Response::Stats(cur) = resp else {
            eprintln!("pmipctl: unexpected answer {resp:?}");
            return Ok(status::REFUSED);
        };
        let mut out = std::io::stdout().lock();
        if cli.json {
            writeln!(out, "{}", serde_json::to_string(&cur)?)?;
        } else {
            if clear {
                write!(out, "\x1b[H\x1b[2J")?;
            }
            let secs = prev
                .as_ref()
                .map(|(t0, _)| t.duration_since(*t0).as_secs_f64());
            let now = chrono_like_now();
            writeln!(
                out,
                "pmipctl show stats --interval {} — {now}",
                every.as_secs()
            )?;
            write!(
                out,
                "{}",
                ctl::format_stats_rates(prev.as_ref().map(|(_, p)| p), &cur, secs)
            )?;
            if !clear {
                writeln!(out)?;
            }
        }
        out.flush()?;
        drop(out);
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return Ok(status::OK);
        }
        prev = Some((t, cur));
        std::thread::sleep(every.saturating_sub(t.elapsed()));
    }
}

/// Seconds since the epoch, UTC, as "HH:MM:SS" (no date crate needed).
fn chrono_like_now() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}
