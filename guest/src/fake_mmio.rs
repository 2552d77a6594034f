//! Fake register memory on the build machine, for driver unit tests.

/// `WORDS` zeroed 32-bit words the drivers use as their register block.
///
/// The memory is leaked so the drivers, which hold `&'static` register
/// blocks, can point at it; a test allocates a few KiB at most.
pub struct FakeMmio<const WORDS: usize> {
    base: *mut u32,
}

impl<const WORDS: usize> FakeMmio<WORDS> {
    pub fn new() -> Self {
        let memory: &'static mut [u32; WORDS] = Box::leak(Box::new([0u32; WORDS]));
        Self {
            base: memory.as_mut_ptr(),
        }
    }

    /// The address a driver's `new` takes.
    pub fn base(&self) -> usize {
        self.base as usize
    }

    /// The word at byte `offset`.
    pub fn word(&self, offset: u64) -> u32 {
        let index = usize::try_from(offset / 4).unwrap();
        assert!(offset % 4 == 0 && index < WORDS);
        // SAFETY: `index` is inside the leaked allocation of `WORDS` words.
        unsafe { self.base.add(index).read_volatile() }
    }

    /// Sets the word at byte `offset`, as the hardware would (for
    /// read-only registers such as TYPER or IAR). Create the driver after
    /// this, so no reference to the old value is still in use.
    pub fn set_word(&self, offset: u64, value: u32) {
        let index = usize::try_from(offset / 4).unwrap();
        assert!(offset % 4 == 0 && index < WORDS);
        // SAFETY: `index` is inside the leaked allocation of `WORDS` words.
        unsafe { self.base.add(index).write_volatile(value) }
    }
}
