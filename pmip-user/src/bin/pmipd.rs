//! pmipd: the pmip gateway daemon.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use pmip_user::fastpath::{FastPath, LoadOptions, ObjectSource};
use pmip_user::logs::LogFormat;
use pmip_user::static_bindings::StaticFile;

#[derive(Parser)]
#[command(
    name = "pmipd",
    about = "Proxy Mobile IP gateway daemon (eBPF fast path)",
    long_about = "Proxy Mobile IP gateway daemon: PMIPv6 MAG/LMA or PMIPv4 PMA/HA signaling, \
                  with an eBPF (XDP/TC) fast path that tunnels subscribers' traffic in GRE.\n\n\
                  Under systemd (pmipd.service) it reports readiness and answers the watchdog; \
                  `systemctl reload` re-reads the configuration (see pmipctl reload).",
    version = version(),
    after_help = "Logs: RUST_LOG sets the filter (default info). Exit status: 0 stopped cleanly, \
                  1 failed, 2 configuration errors."
)]
struct Cli {
    /// eBPF object file (default: $PMIP_EBPF_OBJECT, else the object built into pmipd, else
    /// pmip-ebpf.o next to pmipd or target/bpf/pmip-ebpf.o).
    #[arg(long, global = true)]
    ebpf_object: Option<PathBuf>,
    /// Log format: auto (journald under systemd, else text), text, json, journald.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto, env = "PMIP_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

/// "0.1.0 (eBPF object embedded, build id …)".
fn version() -> String {
    let obj = ObjectSource::choose(
        std::env::args_os()
            .skip_while(|a| a != "--ebpf-object")
            .nth(1)
            .map(PathBuf::from),
    );
    format!("{} ({})", env!("CARGO_PKG_VERSION"), obj.version_line())
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway from its configuration file (role, protocol, interfaces,
    /// peers, pools, profiles): prints `pmipd: ready` once serving.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Only check the configuration and exit.
        #[arg(long)]
        check: bool,
    },
    /// Attach the pass-everything XDP program to interfaces and stay in the
    /// foreground (veth far ends in labs: native XDP into a veth needs one).
    XdpPass { ifaces: Vec<String> },
    /// Load the fast path, attach it, install the static bindings of FILE and
    /// keep them until SIGINT/SIGTERM.
    Static {
        file: PathBuf,
        /// Print the fast-path counters every this many seconds.
        #[arg(long)]
        stats_every: Option<u64>,
    },
    /// Remove everything pinned under DIR: detaches the fast path a previous
    /// run left forwarding, and frees its maps.
    Unpin { dir: PathBuf },
    /// Remove what a stopped run of an anchor cluster member left on this
    /// host: the service and cluster addresses on the core interface and the
    /// block routes (the unit's ExecStopPost; after a crash or kill -9 they
    /// would otherwise stay until their lifetime of one lease runs out).
    Cleanup {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write man pages (pmipd.8, pmipd-run.8, …) and shell completions
    /// (bash, zsh, fish) for pmipd into DIR (used to build the package).
    #[command(hide = true)]
    Generate { dir: PathBuf },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    pmip_user::logs::init(cli.log_format, "pmipd")?;
    let source = ObjectSource::choose(cli.ebpf_object);
    let mut opts = LoadOptions::default();
    match &source {
        ObjectSource::File(p) => opts.object = p.clone(),
        ObjectSource::Embedded(b) => opts.embedded = Some(b),
    }
    match cli.cmd {
        Cmd::Run { config, check } => run_daemon(source, &config, check),
        Cmd::Generate { dir } => pmip_user::cli_docs::generate(Cli::command(), "8", &dir),
        Cmd::XdpPass { ifaces } => {
            let mut fp = FastPath::load(&opts)?;
            for i in &ifaces {
                fp.attach_pass(i)?;
            }
            println!("pmipd: xdp-pass attached to {}", ifaces.join(" "));
            wait_for_signal()
        }
        Cmd::Static { file, stats_every } => run_static(&opts, &file, stats_every),
        Cmd::Unpin { dir } => pmip_user::fastpath::unpin_all(&dir),
        Cmd::Cleanup { config } => cleanup(&config),
    }
}

fn cleanup(path: &std::path::Path) -> Result<()> {
    let cfg = pmip_user::config::Config::load(path).map_err(|errs| {
        anyhow::anyhow!(
            "{}: {} configuration error(s)",
            path.display(),
            errs.0.len()
        )
    })?;
    if cfg.cluster.is_none() {
        return Ok(()); // not a cluster member: nothing of ours on the host
    }
    pmip_user::cluster::cleanup(&cfg)
}

fn run_daemon(object: ObjectSource, path: &std::path::Path, check: bool) -> Result<()> {
    let cfg = match pmip_user::config::Config::load(path) {
        Ok(c) => c,
        Err(errs) => {
            // A wrong configuration is the operator's to fix: name every key, no backtrace.
            for e in &errs.0 {
                eprintln!("pmipd: {}: {e}", path.display());
            }
            eprintln!(
                "pmipd: {}: {} configuration error(s); not started",
                path.display(),
                errs.0.len()
            );
            std::process::exit(2);
        }
    };
    // What start would refuse and the file alone cannot show: the maps' memory.
    let note = match pmip_user::daemon::preflight(&cfg) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("pmipd: {}: {e}", path.display());
            eprintln!(
                "pmipd: {}: 1 configuration error(s); not started",
                path.display()
            );
            std::process::exit(2);
        }
    };
    if check {
        println!("pmipd: {}: configuration OK", path.display());
        println!("pmipd: note: {note}");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(pmip_user::daemon::run(
        cfg,
        pmip_user::daemon::Options {
            object,
            config_path: path.to_path_buf(),
        },
        || {
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "pmipd: ready");
            let _ = out.flush();
        },
    ))
}

fn wait_for_signal() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })
}

fn run_static(opts: &LoadOptions, file: &std::path::Path, stats_every: Option<u64>) -> Result<()> {
    let cfg = StaticFile::load(file)?;
    let mut opts = opts.clone();
    opts.pin_dir = cfg.pin_dir.clone();
    let mut fp = FastPath::load(&opts)?;
    for spec in &cfg.interfaces {
        if spec.role == 0 {
            fp.attach_pass(&spec.name)?;
            continue;
        }
        let mode = fp
            .attach(spec, cfg.attach_mode)
            .with_context(|| format!("interface {}", spec.name))?;
        tracing::info!(iface = %spec.name, ?mode, "attached");
    }
    for b in cfg.access_bindings()? {
        fp.install_access(&b)?;
        tracing::info!(
            sub_id = b.sub_id,
            up = b.uplink_key,
            down = b.downlink_key,
            "access binding installed"
        );
    }
    for b in &cfg.anchor {
        fp.install_anchor(b)?;
        tracing::info!(
            sub_id = b.sub_id,
            up = b.uplink_key,
            down = b.downlink_key,
            "anchor binding installed"
        );
    }
    println!("pmipd: static bindings installed; forwarding");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let every = std::time::Duration::from_secs(stats_every.unwrap_or(3600).max(1));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tokio::time::sleep(every) => {
                    if stats_every.is_some() {
                        let c = fp.counters()?;
                        let line: Vec<String> = c.iter().filter(|(_, v)| *v > 0).map(|(n, v)| format!("{n}={v}")).collect();
                        println!("{}", line.join(" "));
                    }
                }
            }
        }
        anyhow::Ok(())
    })?;
    if let Some(d) = &cfg.pin_dir {
        tracing::info!(pin_dir = %d.display(), "exiting; the fast path keeps forwarding");
    }
    Ok(())
}
