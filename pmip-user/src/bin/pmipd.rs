//! pmipd: the pmip gateway daemon.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pmip_user::fastpath::{FastPath, LoadOptions};
use pmip_user::static_bindings::StaticFile;

#[derive(Parser)]
#[command(
    name = "pmipd",
    about = "Proxy Mobile IP gateway daemon (eBPF fast path)"
)]
struct Cli {
    /// eBPF object (default: $PMIP_EBPF_OBJECT, next to pmipd, or target/bpf/pmip-ebpf.o).
    #[arg(long, global = true)]
    ebpf_object: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
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
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut opts = LoadOptions::default();
    if let Some(o) = cli.ebpf_object {
        opts.object = o;
    }
    match cli.cmd {
        Cmd::Run { config, check } => run_daemon(opts, &config, check),
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
    }
}

fn run_daemon(opts: LoadOptions, path: &std::path::Path, check: bool) -> Result<()> {
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
            ebpf_object: opts.object,
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
