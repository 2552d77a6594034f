//! The VMM binary's answers to bad payloads, and `--dump-dtb`, on any
//! machine: the payload is read and checked before KVM is opened, so the
//! build machine can run these.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::image;

const VMM: &str = env!("CARGO_BIN_EXE_uirq-vmm");

/// A scratch directory, removed when dropped.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// Runs the VMM; returns its exit code and stderr.
fn vmm(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(VMM).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit 125 with one line that contains `needle`.
fn refused(args: &[&std::ffi::OsStr], needle: &str) {
    let (code, err) = vmm(args);
    assert_eq!(code, 125, "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn payloads_that_cannot_boot_are_one_sentence_and_exit_125() {
    let s = Scratch::new();
    let big = s.file("big-Image", &image(40 << 20, 16));
    let raw = s.file("raw.bin", &vec![0xAA; 3 << 20]);
    let ok = s.file("Image", &image(1 << 20, 16));
    let initrd = s.file("initrd", &vec![0u8; 30 << 20]);
    let text = s.file("not.dtb", b"/dts-v1/; / { };");
    let long = "x".repeat(2048);
    refused(
        &[os("--kernel"), big.as_os_str(), os("--ram-mib"), os("32")],
        "give more --ram-mib",
    );
    refused(
        &[os("--kernel"), raw.as_os_str(), os("--ram-mib"), os("2")],
        "guest RAM",
    );
    refused(
        &[os("--kernel"), raw.as_os_str(), os("--ram-mib"), os("4")],
        "not an arm64 Image",
    );
    refused(
        &[
            os("--kernel"),
            ok.as_os_str(),
            os("--initrd"),
            initrd.as_os_str(),
            os("--ram-mib"),
            os("32"),
        ],
        "initrd",
    );
    refused(
        &[os("--kernel"), ok.as_os_str(), os("--cmdline"), os(&long)],
        "2047",
    );
    refused(
        &[
            os("--kernel"),
            ok.as_os_str(),
            os("--dtb"),
            text.as_os_str(),
        ],
        "not a flattened device tree",
    );
    refused(
        &[os("--kernel"), s.path().as_os_str()],
        "not a regular file",
    );
    refused(&[os("--image"), os("/nonexistent/fw.bin")], "cannot read");
}

#[test]
fn dump_dtb_writes_the_generated_tree_and_runs_nothing() {
    let s = Scratch::new();
    let out = s.path().join("virt.dtb");
    let (code, err) = vmm(&[os("--dump-dtb"), out.as_os_str(), os("--cpus"), os("4")]);
    assert_eq!(code, 0, "{err}");
    let tree = std::fs::read(&out).unwrap();
    assert_eq!(tree[..4], 0xd00d_feedu32.to_be_bytes());
    // The dumped tree is accepted back as a --dtb (the checker agrees).
    let k = s.file("Image", &image(1 << 20, 16));
    let out2 = s.path().join("again.dtb");
    let (code, err) = vmm(&[
        os("--kernel"),
        k.as_os_str(),
        os("--dtb"),
        out.as_os_str(),
        os("--dump-dtb"),
        out2.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&out2).unwrap(),
        tree,
        "--dtb is used as given"
    );
}

// `--probe` needs no payload: on a machine that cannot run the VMM it is
// the one sentence saying so (the payload is not even looked at), and its
// usage errors are the VMM's usual sentence and code.
#[test]
fn probe_runs_without_a_payload_or_is_refused_in_one_sentence() {
    if cfg!(target_arch = "aarch64") {
        // There it opens KVM: the end-to-end tests cover it.
        return;
    }
    refused(&[os("--probe")], "needs an aarch64 Linux host");
    refused(
        &[
            os("--probe"),
            os("--json"),
            os("--image"),
            os("/no/such/image"),
        ],
        "`cargo xtask probe`",
    );
    refused(&[os("--json"), os("--image"), os("g.bin")], "required");
    refused(&[os("--probe"), os("--no-probe")], "--no-probe");
}
