//! The built `xtask` binary's command line: every verb's `--help` exits 0
//! and names its options; a usage error is one sentence and exit code
//! [`XTASK_ERROR`], before anything is built.

use std::process::{Command, Output};

use xtask::XTASK_ERROR;

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the xtask binary runs")
}

#[test]
fn every_verb_s_help_exits_0_and_names_its_options() {
    let verbs: [(&str, &[&str]); 8] = [
        ("run", &["--linux", "[-- <VMM ARGS>...]"]),
        ("probe", &["--json"]),
        ("test", &[]),
        (
            "bench-latency",
            &[
                "--samples",
                "--warmup",
                "--irqchip",
                "--cpus",
                "--json",
                "--plot",
            ],
        ),
        ("bench-boot", &["--runs", "--cpus", "--json"]),
        ("build", &[]),
        ("trace-svg", &["--interrupt", "--from", "--to", "--title"]),
        ("kernels", &["PACKAGE", "--json"]),
    ];
    for (verb, options) in verbs {
        let out = xtask(&[verb, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{verb} --help: {text}");
        assert!(
            text.contains(&format!("Usage: cargo xtask {verb}")),
            "{text}"
        );
        for option in options.iter().chain(&["--help"]) {
            assert!(
                text.contains(option),
                "{verb} --help does not name {option}: {text}"
            );
        }
        assert!(!text.contains('\u{1b}'), "NO_COLOR is set: {text:?}");
    }
    for top in [&["--help"][..], &["help"], &[]] {
        let out = xtask(top);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{top:?}");
        for (verb, _) in verbs {
            assert!(text.contains(verb), "{top:?} does not list {verb}: {text}");
        }
    }
}

#[test]
fn usage_errors_exit_with_xtask_s_code_in_one_sentence() {
    for bad in [
        &["run", "--ticks", "5"][..],
        &["no-such-verb"],
        &["bench-boot", "--runs", "0"],
        &["probe", "--cpus", "2"],
    ] {
        let out = xtask(bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(i32::from(XTASK_ERROR)),
            "{bad:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
        assert!(err.starts_with("xtask: error: "), "{bad:?}: {err}");
        assert!(out.stdout.is_empty(), "{bad:?}");
    }
    let err = String::from_utf8_lossy(&xtask(&["run", "--ticks", "5"]).stderr).into_owned();
    assert!(
        err.contains("'-- --ticks'"),
        "the tip says where VMM arguments go: {err}"
    );
}

#[test]
fn a_run_that_cannot_have_its_kernel_fails_in_seconds_before_building() {
    if !xtask::project::is_native_kvm_host() && !xtask::l1::qemu_installed() {
        // ensure_qemu would install it with apt first: not a quick check.
        eprintln!("\n!!!!! not run: QEMU is not installed here\n");
        return;
    }
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["run", "--linux"])
        .env("UIRQ_L1_KERNEL", "/no/such/vmlinuz")
        .output()
        .expect("the xtask binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(XTASK_ERROR)), "{err}");
    assert!(
        err.ends_with("xtask: error: UIRQ_L1_KERNEL=\"/no/such/vmlinuz\" does not name a file\n"),
        "{err}"
    );
    assert!(!err.contains("building"), "it built first: {err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{err}"
    );
}
