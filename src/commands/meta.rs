//! `pi-burn completions` and `pi-burn man`: generated from the clap definitions.

use crate::cli::{Cli, Shell};
use anyhow::Result;
use clap::CommandFactory;

pub fn completions(shell: Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let sh = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(sh, &mut cmd, "pi-burn", &mut std::io::stdout());
    Ok(())
}

pub fn man() -> Result<()> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(())
}
