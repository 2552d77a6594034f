//! Priority arithmetic: group priority, the active priorities registers
//! and the running priority (IHI 0048B 3.3, 4.4.3, 4.4.6, 4.4.12).
//!
//! This model implements all 8 priority bits, so there are 128 preemption
//! levels: the smallest binary point leaves the group priority in bits
//! [7:1] (IHI 0048B 3.3.4, 4.4.3). Each preemption level has one bit in
//! the active priorities registers, in the layout the specification
//! recommends (IHI 0048B 4.4.12): bit `n` of the 128 stands for group
//! priority `n << 1`. Group 0 uses GICC_APR0-3, Group 1 GICC_NSAPR0-3.

/// Smallest GICC_BPR value with 8 priority bits (IHI 0048B 4.4.3: the
/// minimum binary point depends on how many priority bits are implemented;
/// with all 8 the group priority can be bits [7:1], binary point 0).
pub(super) const MIN_BPR: u8 = 0;

/// Smallest GICC_ABPR value: the Group 1 binary point is one more than the
/// Group 0 one (IHI 0048B 4.4.3, 4.4.8).
pub(super) const MIN_ABPR: u8 = MIN_BPR + 1;

/// Running priority when nothing is active. One more than the lowest real
/// priority, so that any interrupt can preempt an idle CPU; GICC_RPR reads
/// it as 0xFF (IHI 0048B 4.4.6).
pub(super) const IDLE_PRIORITY: u16 = 0x100;

/// Number of 32-bit active priorities registers per group.
pub(super) const APR_REGS: usize = 4;

/// Group priority of `priority` when the group priority field is bits
/// [7:shift]. `shift` is BPR + 1 for Group 0 (or with CBPR set) and ABPR
/// for Group 1 (IHI 0048B 3.3.4). A shift of 8 leaves no group priority
/// bits, so nothing can preempt.
pub(super) fn group_priority(priority: u8, shift: u8) -> u8 {
    let mask = 0xFFu16 << shift.min(8);
    priority & (mask as u8)
}

/// The active priorities of one CPU interface, one bit per preemption level
/// per group (IHI 0048B 4.4.12, 4.4.13).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ActivePriorities {
    /// GICC_APR0-3: Group 0 active priorities.
    pub(super) group0: [u32; APR_REGS],
    /// GICC_NSAPR0-3: Group 1 active priorities.
    pub(super) group1: [u32; APR_REGS],
}

impl ActivePriorities {
    fn regs(&self, group1: bool) -> &[u32; APR_REGS] {
        if group1 {
            &self.group1
        } else {
            &self.group0
        }
    }

    fn regs_mut(&mut self, group1: bool) -> &mut [u32; APR_REGS] {
        if group1 {
            &mut self.group1
        } else {
            &mut self.group0
        }
    }

    /// Records that an interrupt with group priority `gp` became active
    /// (IHI 0048B 3.3.2: the running priority becomes its group priority).
    pub(super) fn activate(&mut self, group1: bool, gp: u8) {
        let level = usize::from(gp >> 1);
        if let Some(reg) = self.regs_mut(group1).get_mut(level / 32) {
            *reg |= 1 << (level % 32);
        }
    }

    /// Priority drop: clears the highest active priority of `group`
    /// (IHI 0048B 3.2.1, 4.4.5). Returns false if the group had none.
    pub(super) fn drop_highest(&mut self, group1: bool) -> bool {
        for reg in self.regs_mut(group1).iter_mut() {
            if *reg != 0 {
                *reg &= *reg - 1; // clear the lowest set bit
                return true;
            }
        }
        false
    }

    /// True if no priority is active in either group.
    pub(super) fn is_empty(&self) -> bool {
        self.group0
            .iter()
            .chain(self.group1.iter())
            .all(|&r| r == 0)
    }

    /// The running priority: the highest (numerically lowest) active group
    /// priority of either group, or [`IDLE_PRIORITY`] (IHI 0048B 4.4.6).
    pub(super) fn running_priority(&self) -> u16 {
        [false, true]
            .iter()
            .filter_map(|&g| lowest_level(self.regs(g)))
            .min()
            .map_or(IDLE_PRIORITY, |level| level << 1)
    }
}

/// Index of the lowest set bit over the registers, as a preemption level.
fn lowest_level(regs: &[u32; APR_REGS]) -> Option<u16> {
    regs.iter()
        .enumerate()
        .find(|(_, &r)| r != 0)
        .map(|(i, &r)| (i as u16) * 32 + r.trailing_zeros() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    // IHI 0048B 3.3.4: binary point 0 splits priority into group
    // priority [7:1] and subpriority [0]; binary point 7 leaves no group
    // priority bits.
    #[test]
    fn group_priority_by_binary_point() {
        assert_eq!(group_priority(0xA5, MIN_BPR + 1), 0xA4);
        assert_eq!(group_priority(0xA5, 4), 0xA0);
        assert_eq!(group_priority(0xA5, 8), 0x00);
        assert_eq!(group_priority(0xFF, 200), 0x00);
    }

    // IHI 0048B 4.4.12: one APR bit per preemption level; 4.4.6: the running
    // priority is the highest active one, 0xFF-ish idle when none.
    #[test]
    fn apr_bits_and_running_priority() {
        let mut a = ActivePriorities::default();
        assert_eq!(a.running_priority(), IDLE_PRIORITY);
        a.activate(false, 0xA0);
        assert_eq!(a.group0[(0x50 / 32) as usize], 1 << (0x50 % 32));
        a.activate(true, 0x40);
        assert_eq!(a.running_priority(), 0x40);
        assert!(a.drop_highest(true));
        assert_eq!(a.running_priority(), 0xA0);
        assert!(!a.drop_highest(true));
        assert!(a.drop_highest(false));
        assert!(a.is_empty());
        a.activate(false, 0xFE);
        assert_eq!(a.group0[3], 1 << 31);
        assert_eq!(a.running_priority(), 0xFE);
    }
}
