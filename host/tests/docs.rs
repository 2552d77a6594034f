//! The commands the README and the chapters in docs/ show still work as
//! written: every `cargo xtask ...` line in a shell code block parses with
//! xtask's own command line, and the VMM arguments of every `run` pass the
//! VMM's checks (its command line, the payload, the program's RAM), on any
//! machine: the VMM stops only where it would open KVM.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::cli::{parse, Parsed, Verb};

const VMM: &str = env!("CARGO_BIN_EXE_uirq-vmm");

/// One command as a document shows it.
#[derive(Debug)]
struct Shown {
    /// `file:line`.
    at: String,
    /// The words after `cargo xtask`.
    words: Vec<String>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf()
}

/// The documents: the README and every chapter.
fn documents() -> Vec<PathBuf> {
    let root = workspace();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is there")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root.join("README.md"));
    docs
}

/// The `cargo xtask` commands in the shell code blocks of `text` (```sh,
/// ```bash or ```console), with `$ ` prompts, `NAME=value` prefixes,
/// comments and backslash continuations taken care of.
fn commands(name: &str, text: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut in_shell = false;
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(lang) = trimmed.strip_prefix("```") {
            in_shell = !in_shell && matches!(lang.trim(), "sh" | "bash" | "console" | "shell");
            continue;
        }
        if !in_shell {
            continue;
        }
        let (start, mut joined) = match pending.take() {
            Some((start, so_far)) => (start, so_far + " " + trimmed),
            None => (n + 1, trimmed.trim_start_matches("$ ").to_string()),
        };
        if joined.ends_with('\\') {
            joined.pop();
            pending = Some((start, joined));
            continue;
        }
        let Some(mut words) = shlex::split(&joined) else {
            panic!("{name}:{start}: unbalanced quotes in `{joined}`");
        };
        // A comment ends the command.
        if let Some(i) = words.iter().position(|w| w.starts_with('#')) {
            words.truncate(i);
        }
        // Environment assignments before the command.
        let first = words
            .iter()
            .position(|w| !w.contains('=') || w.starts_with('-'))
            .unwrap_or(words.len());
        let words = &words[first..];
        if words.len() >= 2 && words[0] == "cargo" && words[1] == "xtask" {
            out.push(Shown {
                at: format!("{name}:{start}"),
                words: words[2..].to_vec(),
            });
        }
    }
    out
}

/// An arm64 Image header (booting.rst 4) over a small body: a kernel the
/// VMM accepts without booting it.
fn fake_kernel(dir: &Path) -> PathBuf {
    let p = dir.join("Image");
    std::fs::write(&p, common::image(1 << 20, 4096)).unwrap();
    p
}

/// What the VMM says about `vmm_args`, run where it cannot reach KVM:
/// `Ok` when every check before KVM passed.
fn vmm_accepts(dir: &Path, vmm_args: &[String]) -> Result<(), String> {
    let no_kvm = dir.join("no-kvm");
    let out = Command::new(VMM)
        .current_dir(dir)
        .args(vmm_args)
        // Last, so it wins over a --kvm-device the command gives.
        .arg("--kvm-device")
        .arg(&no_kvm)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the VMM: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    let help = vmm_args.iter().any(|a| a == "--help" || a == "-h");
    let dump = vmm_args.iter().any(|a| a.starts_with("--dump-dtb"));
    let stopped_at_kvm =
        err.contains("needs an aarch64 Linux host") || err.contains(&no_kvm.display().to_string());
    match code {
        Some(0) if help || dump => Ok(()),
        Some(125) if stopped_at_kvm => Ok(()),
        _ => Err(format!("exit {code:?}: {}", err.trim())),
    }
}

/// A file the reader supplies (`~/linux/.../Image`, `my-board.dtb`),
/// replaced by a stand-in of its kind when it is not on this machine.
fn stand_in(dir: &Path, option: &str) -> PathBuf {
    match option {
        "--kernel" => fake_kernel(dir),
        "--dtb" => {
            let p = dir.join("board.dtb");
            let out = Command::new(VMM)
                .arg("--dump-dtb")
                .arg(&p)
                .output()
                .unwrap();
            assert!(out.status.success(), "--dump-dtb failed");
            p
        }
        _ => {
            let p = dir.join(format!("stand-in{option}"));
            std::fs::write(&p, vec![0u8; 4096]).unwrap();
            p
        }
    }
}

/// The VMM arguments `cargo xtask run` would pass for this command, with
/// stand-ins for the files xtask supplies and the reader's own files.
fn vmm_args_of(dir: &Path, linux: bool, vmm_args: &[String]) -> Vec<String> {
    let mut vmm_args = vmm_args.to_vec();
    for option in xtask::jobs::FILE_OPTIONS {
        vmm_args = xtask::jobs::rewrite_option_values(&vmm_args, &[option], |p| {
            (!Path::new(p).exists()).then(|| stand_in(dir, option).display().to_string())
        });
    }
    let vmm_args = &vmm_args[..];
    if linux {
        let kernel = fake_kernel(dir);
        let initrd = dir.join("initramfs.cpio");
        std::fs::write(&initrd, b"070701").unwrap();
        let job = xtask::linux::boot_job(&kernel, &initrd, &[], vmm_args);
        let (_, args) = xtask::jobs::split_fields(&job).expect("the Linux job's fields parse");
        return args.to_vec();
    }
    let mut args = Vec::new();
    if xtask::jobs::needs_default_image(vmm_args) {
        let image = dir.join("guest.bin");
        std::fs::write(&image, vec![0u8; 4096]).unwrap();
        args.extend(["--image".to_string(), image.display().to_string()]);
    }
    args.extend(vmm_args.iter().cloned());
    args
}

#[test]
fn every_command_the_docs_show_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut shown = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(workspace()).unwrap().display().to_string();
        shown.extend(commands(&name, &text));
    }
    assert!(
        shown.len() >= 20,
        "only {} commands found: the extraction is broken",
        shown.len()
    );
    let mut failures = Vec::new();
    for cmd in &shown {
        let argv = std::iter::once("cargo xtask".to_string()).chain(cmd.words.iter().cloned());
        match parse(argv) {
            Parsed::Verb(Verb::Run { linux, vmm_args }) => {
                let args = vmm_args_of(dir.path(), linux, &vmm_args);
                if let Err(e) = vmm_accepts(dir.path(), &args) {
                    failures.push(format!(
                        "{}: `{}`: the VMM says {e}",
                        cmd.at,
                        cmd.words.join(" ")
                    ));
                }
            }
            Parsed::Verb(_) => {}
            Parsed::Print { code: 0, .. } => {}
            Parsed::Print { text, .. } => failures.push(format!(
                "{}: `{}`: {}",
                cmd.at,
                cmd.words.join(" "),
                text.trim()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "commands in the docs that fail:\n{}",
        failures.join("\n")
    );
}

#[test]
fn broken_commands_are_caught() {
    let text = "```sh\ncargo xtask run -- --ticks 0  # a comment\nUIRQ_LOG=debug cargo xtask bench-latency \\\n  --samples 5\n```\n```text\ncargo xtask not-a-verb\n```\n";
    let shown = commands("t.md", text);
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0].words, ["run", "--", "--ticks", "0"]);
    assert_eq!(shown[0].at, "t.md:2");
    assert_eq!(shown[1].words, ["bench-latency", "--samples", "5"]);
    let dir = tempfile::tempdir().unwrap();
    // --ticks 0 is out of range: the VMM refuses it.
    let args = vmm_args_of(dir.path(), false, &shown[0].words[2..]);
    assert!(vmm_accepts(dir.path(), &args).is_err());
    let args = vmm_args_of(dir.path(), false, &["--ticks".to_string(), "5".to_string()]);
    assert_eq!(vmm_accepts(dir.path(), &args), Ok(()));
    // A verb xtask does not have.
    let argv = ["cargo xtask", "bench-latencyy"].map(String::from);
    assert!(matches!(parse(argv), Parsed::Print { code, .. } if code != 0));
}
