//! `cargo xtask lab`: the whole mission on one machine, in network namespaces.
use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub struct LabArgs {
    /// Run the lab with PMIPv4 (PMA/HA) instead of PMIPv6 (MAG/LMA).
    #[arg(long)]
    pub pmipv4: bool,
}

pub fn run_lab(_a: &LabArgs) -> Result<()> {
    bail!("the lab is not built yet")
}
