//! The man pages (clap_mangen) and shell completions (clap_complete), generated from the same
//! clap definitions as the parser, so they cannot drift from it. The package build writes them
//! with `tenantry man --out-dir DIR` (hidden) and `tenantry completions SHELL`.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::Cli;

/// Writes `tenantry.1` and one page per subcommand (`tenantry-backup-create.1`...) into
/// `out_dir`; returns the files written, sorted.
///
/// Errors: I/O on `out_dir`.
pub fn man_pages(out_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir)?;
    clap_mangen::generate_to(Cli::command(), out_dir)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(out_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "tenantry", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_gets_a_man_page_and_completions_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "tenantry.1",
            "tenantry-serve.1",
            "tenantry-backup-restore.1",
            "tenantry-compact.1",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        assert!(
            !names.iter().any(|n| n.starts_with("tenantry-man")),
            "{names:?}"
        );
        let page = std::fs::read_to_string(dir.path().join("tenantry-backup-create.1")).unwrap();
        assert!(page.contains("recipient"), "{page}");
        let mut bash = Vec::new();
        completions(clap_complete::Shell::Bash, &mut bash);
        let bash = String::from_utf8(bash).unwrap();
        assert!(bash.contains("restore") && bash.contains("--tls-self-signed"));
    }
}
