//! Man pages and shell completions made from the clap definitions of
//! pmipd and pmipctl (their hidden `generate` command), so the package's
//! documentation is always the `--help` the binaries print.
use std::path::Path;

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// Writes `DIR/man/NAME.SECTION` (and one page per subcommand,
/// `NAME-SUB.SECTION`, as git does) and `DIR/completions/` for bash, zsh
/// and fish.
pub fn generate(cmd: Command, section: &'static str, dir: &Path) -> Result<()> {
    let man = dir.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    let mut cmd = cmd;
    cmd.build();
    pages(&cmd, cmd.get_name(), section, &man)?;
    let comp = dir.join("completions");
    std::fs::create_dir_all(&comp).with_context(|| format!("creating {}", comp.display()))?;
    let name = cmd.get_name().to_string();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, &name, &comp)
            .with_context(|| format!("{shell} completions in {}", comp.display()))?;
    }
    Ok(())
}

fn pages(cmd: &Command, name: &str, section: &'static str, dir: &Path) -> Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .section(section)
        .render(&mut out)
        .with_context(|| format!("rendering the man page of {name}"))?;
    let path = dir.join(format!("{name}.{section}"));
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        pages(sub, &format!("{name}-{}", sub.get_name()), section, dir)?;
    }
    Ok(())
}
