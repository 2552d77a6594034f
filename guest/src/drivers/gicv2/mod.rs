//! GICv2 driver: the Generic Interrupt Controller, architecture version 2.
//!
//! Everything here follows the *ARM Generic Interrupt Controller Architecture
//! Specification, version 2.0* (ARM IHI 0048B); section numbers below refer to
//! it.
//!
//! # The two halves of a GICv2 (1.3, 2.1)
//!
//! ```text
//!  timer, UART, ...      ┌──────────────────┐      ┌─────────────────┐
//!  interrupt lines ────▶ │  Distributor     │ ───▶ │ CPU interface 0 │ ──IRQ──▶ core 0
//!                        │  (GICD, shared)  │ ───▶ │ CPU interface 1 │ ──IRQ──▶ core 1
//!                        └──────────────────┘      └─────────────────┘
//! ```
//!
//! - The **distributor** ([`Gicd`]) owns the per-interrupt state: enabled,
//!   pending, active, priority, which CPUs it targets, level or edge. It picks
//!   the highest-priority pending interrupt for each CPU interface (4.3).
//! - Each **CPU interface** ([`Gicc`]) decides whether that interrupt is
//!   important enough to interrupt its core (priority mask, running priority)
//!   and is where the core *acknowledges* an interrupt (reading `GICC_IAR`
//!   returns its id and marks it active) and *ends* it (writing the same
//!   value to `GICC_EOIR` drops the running priority and deactivates it)
//!   (3.2, 4.4).
//!
//! # Interrupt ids (2.2.1)
//!
//! | ids       | kind | banked per CPU? | example                       |
//! |-----------|------|-----------------|-------------------------------|
//! | 0-15      | SGI  | yes             | software-generated, IPIs      |
//! | 16-31     | PPI  | yes             | the generic timer (27, 30)    |
//! | 32-1019   | SPI  | no              | devices shared by all cores   |
//! | 1020-1023 | special | -            | 1023 = spurious (nothing to acknowledge) |
//!
//! SGIs and PPIs are *banked*: at the same distributor address each core sees
//! its own copy of their enable, pending, active and priority bits. That is
//! why the first word of `ISENABLER`, `ICENABLER`, ... and the first eight
//! words of `IPRIORITYR` and `ITARGETSR` are per-CPU, and everything after is
//! shared (4.1.4). [`IntId`] (from `uirq-abi`) can only hold a real id, so
//! nothing here ever indexes a register with 1020..=1023.
//!
//! # The life of one interrupt (3.2.4, Figure 3-1)
//!
//! ```text
//!   inactive ──line asserted──▶ pending ──IAR read──▶ active ──EOIR write──▶ inactive
//! ```
//!
//! For a level-sensitive interrupt such as the timer the device must lower its
//! line *before* the EOI; otherwise the GIC sees it still asserted and makes
//! it pending again at once.
//!
//! In Rust: [`Gicc::acknowledge`] returns `Option<Acknowledged>` (`None` is
//! the spurious id, so it cannot be mistaken for an interrupt), and
//! [`Gicc::end_of_interrupt`] consumes the [`Acknowledged`] token, so an
//! interrupt is ended at most once and with exactly the value `IAR` returned.

mod gicc;
mod gicd;

pub use gicc::{Acknowledged, Dropped, Gicc, GiccIidr};
pub use gicd::{Gicd, GicdIidr, GicdType, SgiTarget, Trigger};
pub use uirq_abi::gicv2::{IntId, IntKind};

/// A GIC priority: 0 is the highest, 0xFF the lowest (3.3).
///
/// An implementation may keep fewer than eight bits; the unimplemented low
/// bits read as zero, so only the order of values matters, not their exact
/// size.
pub type Priority = u8;

/// The priority the distributor gives every interrupt at initialisation:
/// the middle of the range, below anything a program raises on purpose
/// (Linux uses the same value).
pub const DEFAULT_PRIORITY: Priority = 0xA0;

/// The lowest priority value: a priority mask (`GICC_PMR`) of 0xFF lets every
/// interrupt through except those at priority 0xFF itself (3.3.2).
pub const LOWEST_PRIORITY: Priority = 0xFF;
