//! Placement and refusal of boot-protocol payloads, on the build machine.

use std::path::{Path, PathBuf};

use vm_memory::{Bytes, GuestAddress};

use super::image::tests::image;
use super::*;

const MIB: u64 = 1 << 20;

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

fn size(mib: u64, cpus: usize) -> MachineSize {
    MachineSize {
        ram_size: mib * MIB,
        cpus,
    }
}

fn files<'a>(kernel: &'a Path, initrd: Option<&'a Path>, cmdline: &'a str) -> KernelFiles<'a> {
    KernelFiles {
        kernel: Some(kernel),
        initrd,
        cmdline,
        dtb: None,
    }
}

/// The error of a payload that must be refused (its summary, not its
/// bytes, if it was accepted).
fn refused(r: Result<Boot, BootError>) -> BootError {
    match r {
        Ok(boot) => panic!("accepted: {}", boot.summary),
        Err(e) => e,
    }
}

fn dtb_of(boot: &Boot) -> (u64, &[u8]) {
    match boot.loads.last() {
        Some(Load::Bytes { addr, bytes }) => (*addr, bytes),
        other => panic!("the device tree is not the last load: {other:?}"),
    }
}

// booting.rst 4: text_offset from a 2 MiB aligned base; x0 = the tree,
// x1-x3 = 0; the tree in a 2 MiB block of its own at the top of RAM.
#[test]
fn an_image_lands_at_its_text_offset_and_x0_points_at_the_tree() {
    let s = Scratch::new();
    let k = s.file("Image", &image(0x1_0000, 3 * MIB, 0b1010, 4096));
    let boot = kernel(&files(&k, None, "console=ttyAMA0"), size(64, 2)).unwrap();
    assert_eq!(boot.entry, RAM_BASE + 0x1_0000);
    assert!(matches!(
        &boot.loads[0],
        Load::ArmImage { base, addr, .. } if *base == RAM_BASE && *addr == boot.entry
    ));
    let (dtb_addr, dtb) = dtb_of(&boot);
    assert_eq!(dtb_addr, RAM_BASE + 62 * MIB);
    assert_eq!(dtb_addr % SZ_2M, 0);
    assert_eq!(boot.regs, [dtb_addr, 0, 0, 0]);
    fdt::check(dtb).unwrap();
}

#[test]
fn a_file_without_the_header_is_a_raw_binary_at_0x80000() {
    let s = Scratch::new();
    let k = s.file("payload.bin", &[0xd5; 1000]);
    let boot = kernel(&files(&k, None, ""), size(16, 1)).unwrap();
    assert_eq!(boot.entry, RAM_BASE + 0x8_0000);
    assert!(
        matches!(&boot.loads[0], Load::Bytes { addr, bytes } if *addr == boot.entry && bytes.len() == 1000)
    );
}

#[test]
fn a_gzip_compressed_image_is_unpacked_first() {
    use std::io::Write;
    let s = Scratch::new();
    let plain = image(0, 2 * MIB, 0, 8192);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&plain).unwrap();
    let k = s.file("vmlinuz", &enc.finish().unwrap());
    let boot = kernel(&files(&k, None, ""), size(64, 1)).unwrap();
    assert!(matches!(&boot.loads[0], Load::ArmImage { bytes, .. } if *bytes == plain));
}

#[test]
fn the_initrd_sits_below_the_tree_and_the_tree_names_it() {
    let s = Scratch::new();
    let k = s.file("Image", &image(0, 4 * MIB, 0, 100));
    let i = s.file("initrd.cpio", &[7u8; 12345]);
    let boot = kernel(&files(&k, Some(&i), "rdinit=/init"), size(64, 1)).unwrap();
    let (dtb_addr, dtb) = dtb_of(&boot);
    let Load::Bytes { addr, bytes } = &boot.loads[1] else {
        panic!("no initrd load")
    };
    assert_eq!(bytes.len(), 12345);
    assert_eq!(addr % PAGE, 0);
    assert!(addr + 12345 <= dtb_addr && dtb_addr - (addr + 12345) < PAGE);
    // The tree's chosen node carries the same range.
    let needle_start = addr.to_be_bytes();
    let needle_end = (addr + 12345).to_be_bytes();
    let has = |n: &[u8]| dtb.windows(8).any(|w| w == n);
    assert!(has(&needle_start) && has(&needle_end));
    assert!(boot.summary.contains("initrd at"), "{}", boot.summary);
}

#[test]
fn what_does_not_fit_is_refused_with_its_sizes() {
    let s = Scratch::new();
    // An Image whose image_size (BSS included) runs into the tree's block.
    let k = s.file("big-bss", &image(0, 15 * MIB, 0, 100));
    let err = refused(kernel(&files(&k, None, ""), size(16, 1)));
    assert!(
        matches!(err, BootError::KernelTooLarge { need, .. } if need == 15 * MIB),
        "{err}"
    );
    // A raw file larger than RAM: refused before it is read.
    let raw = s.file("raw", &vec![1u8; (4 * MIB + 1) as usize]);
    let err = refused(kernel(&files(&raw, None, ""), size(4, 1)));
    assert!(matches!(err, BootError::LargerThanRam { .. }), "{err}");
    // A raw file that fits in RAM but not below the tree.
    let raw = s.file("raw2", &vec![1u8; (4 * MIB) as usize]);
    let err = refused(kernel(&files(&raw, None, ""), size(4, 1)));
    assert!(
        matches!(err, BootError::RamTooSmall { .. })
            || matches!(err, BootError::KernelTooLarge { .. }),
        "{err}"
    );
    let err = refused(kernel(&files(&raw, None, ""), size(6, 1)));
    assert!(err.to_string().contains("raw binary"), "{err}");
    // An initrd that does not fit between kernel and tree.
    let k = s.file("Image", &image(0, 8 * MIB, 0, 100));
    let i = s.file("initrd", &vec![0u8; (7 * MIB) as usize]);
    let err = refused(kernel(&files(&k, Some(&i), ""), size(16, 1)));
    assert!(matches!(err, BootError::InitrdTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("--ram-mib"), "{err}");
}

#[test]
fn bad_files_and_command_lines_are_one_sentence_each() {
    let s = Scratch::new();
    let k = s.file("Image", &image(0, MIB, 0, 100));
    let empty = s.file("empty", b"");
    let err = refused(kernel(&files(&empty, None, ""), size(16, 1)));
    assert!(matches!(err, BootError::Empty { .. }), "{err}");
    let err = refused(kernel(&files(s.path(), None, ""), size(16, 1)));
    assert!(matches!(err, BootError::NotAFile { .. }), "{err}");
    let err = refused(kernel(
        &files(&s.path().join("absent"), None, ""),
        size(16, 1),
    ));
    assert!(matches!(err, BootError::Read { .. }), "{err}");
    let be = s.file("be", &image(0, MIB, 1, 100));
    assert!(matches!(
        kernel(&files(&be, None, ""), size(16, 1)),
        Err(BootError::BigEndian { .. })
    ));
    let gz = s.file("broken.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    assert!(matches!(
        kernel(&files(&gz, None, ""), size(16, 1)),
        Err(BootError::Gunzip { .. })
    ));
    let long = "x".repeat(fdt::MAX_BOOTARGS);
    let err = refused(kernel(&files(&k, None, &long), size(16, 1)));
    assert!(
        matches!(err, BootError::CmdlineTooLong { len } if len == fdt::MAX_BOOTARGS),
        "{err}"
    );
    let just_fits = "x".repeat(fdt::MAX_BOOTARGS - 1);
    kernel(&files(&k, None, &just_fits), size(16, 1)).unwrap();
    assert!(matches!(
        kernel(&files(&k, None, "tab\there"), size(16, 1)),
        Err(BootError::CmdlineChars)
    ));
    let not_dtb = s.file("not.dtb", b"not a device tree");
    let f = KernelFiles {
        dtb: Some(&not_dtb),
        ..files(&k, None, "")
    };
    let err = refused(kernel(&f, size(16, 1)));
    assert!(matches!(err, BootError::Dtb { .. }), "{err}");
    assert!(
        err.to_string().contains("not a flattened device tree"),
        "{err}"
    );
}

#[test]
fn a_given_tree_is_used_as_it_is() {
    let s = Scratch::new();
    let k = s.file("Image", &image(0, MIB, 0, 100));
    let mine = device_tree(size(32, 4), "mine", None).unwrap();
    let d = s.file("my.dtb", &mine);
    let f = KernelFiles {
        dtb: Some(&d),
        ..files(&k, None, "")
    };
    let boot = kernel(&f, size(16, 1)).unwrap();
    assert_eq!(dtb_of(&boot).1, &mine[..]);
    assert!(boot.summary.contains("given"));
}

#[test]
fn loads_reach_guest_ram() {
    let s = Scratch::new();
    let body = image(0, MIB, 0, 64);
    let k = s.file("Image", &body);
    let i = s.file("initrd", b"initrd bytes");
    let boot = kernel(&files(&k, Some(&i), ""), size(16, 1)).unwrap();
    let ram = crate::memory::create_ram(16 * MIB).unwrap();
    boot.write_to(&ram).unwrap();
    let mut back = vec![0u8; body.len()];
    ram.read_slice(&mut back, GuestAddress(boot.entry)).unwrap();
    assert_eq!(back, body);
    let (dtb_addr, dtb) = dtb_of(&boot);
    let mut magic = [0u8; 4];
    ram.read_slice(&mut magic, GuestAddress(dtb_addr)).unwrap();
    assert_eq!(magic, dtb[..4]);
    assert_eq!(u32::from_be_bytes(magic), 0xd00d_feed);
}

#[test]
fn the_firmware_boots_as_before() {
    let boot = Boot::firmware(vec![1, 2, 3], [5, 6, 7], 16 * MIB).unwrap();
    assert_eq!(boot.entry, IMAGE_LOAD_ADDR);
    assert_eq!(boot.regs, [5, 6, 7, 0]);
    assert!(Boot::firmware(vec![0; 0x2001], [1, 0, 0], 0x2000).is_err());
}

// A firmware whose Image header says it occupies more than RAM (its BSS
// and stacks are not in the file) is refused before any VM exists.
#[test]
fn a_firmware_that_needs_more_ram_than_given_is_refused() {
    let fw = image(0, 3 * MIB, 0, 100);
    assert!(fw.len() < 4096);
    let err = Boot::firmware(fw.clone(), [1, 0, 0], 2 * MIB).unwrap_err();
    assert!(
        err.to_string()
            .contains("occupies 3145728 bytes once running"),
        "{err}"
    );
    assert!(err.to_string().contains("--ram-mib"), "{err}");
    Boot::firmware(fw, [1, 0, 0], 4 * MIB).unwrap();
}

// What is not a regular file is refused at once, before any read: a FIFO
// nobody writes to (opening it for reading would block), /dev/zero (reading
// it would never end), a directory.
#[test]
fn fifos_and_devices_are_refused_without_blocking() {
    let s = Scratch::new();
    let fifo = s.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path, valid for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    for path in [fifo, PathBuf::from("/dev/zero"), s.path().to_path_buf()] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = read_file("firmware image", &path, 16 * MIB);
            let _ = tx.send((path, r.map(|b| b.len())));
        });
    }
    drop(tx);
    for _ in 0..3 {
        let (path, r) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("read_file blocked");
        match r {
            Err(e @ BootError::NotAFile { .. }) => {
                assert_eq!(
                    e.to_string(),
                    format!(
                        "the firmware image {} is not a regular file",
                        path.display()
                    )
                );
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }
}

#[test]
fn a_file_is_read_whole_up_to_its_limit() {
    let s = Scratch::new();
    let f = s.file("fw.bin", &[7u8; 4096]);
    assert_eq!(read_file("firmware image", &f, 4096).unwrap(), [7u8; 4096]);
    assert!(matches!(
        read_file("firmware image", &f, 4095),
        Err(BootError::LargerThanRam { size: 4096, .. })
    ));
}
