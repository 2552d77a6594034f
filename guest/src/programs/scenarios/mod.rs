//! The GIC scenarios: one program per behaviour of a GICv2, each checked
//! from the guest with precise assertions and ended with one verdict line,
//! `scenario <name>: PASS` or `scenario <name>: FAIL: <what>`.
//!
//! They run the same on the VMM's userspace GIC and on QEMU's own emulated
//! GICv2 (`cargo xtask test` compares the two); section numbers refer to
//! the GICv2 architecture specification, ARM IHI 0048B.
//!
//! | program     | module        | what it shows                                        |
//! |-------------|---------------|------------------------------------------------------|
//! | `oneshot`   | [`oneshot`]   | one TVAL-armed virtual-timer interrupt, exactly one  |
//! | `ptimer`    | [`ptimer`]    | the EL1 physical timer through PPI 30                |
//! | `pmr`       | [`pmr`]       | pending but not signalled at or below GICC_PMR       |
//! | `preempt`   | [`preempt`]   | a higher priority interrupt nests inside a handler   |
//! | `eoimode`   | [`eoimode`]   | EOImode = 1: EOIR drops priority, DIR deactivates    |
//! | `level`     | [`level`]     | a level interrupt asserted at EOI is taken again     |
//! | `sgi`       | [`sgi`]       | SGIs to self, source CPU in IAR, SGIR filters        |
//! | `spi-state` | [`spi_state`] | software pending/active set and clear on an SPI      |
//! | `disabled`  | [`disabled`]  | disabled distributor / CPU interface signal nothing  |
//! | `spurious`  | [`spurious`]  | IAR answers 1023 when nothing can be acknowledged    |
//! | `regs`      | [`regs`]      | read-only, RAZ/WI, byte access and priority masks    |
//! | `unmapped`  | [`unmapped`]  | an access to nothing: a synchronous external abort   |
//!
//! and, on several cores (`Program::min_cpus`; with fewer they fail at once
//! and say why):
//!
//! | program       | module          | what it shows                                      |
//! |---------------|-----------------|----------------------------------------------------|
//! | `sgi-smp`     | [`sgi_smp`]     | SGI target lists and filters, on the right cores   |
//! | `sgi-sources` | [`sgi_sources`] | one SGI pending from two sources: two acknowledges |
//! | `spi-route`   | [`spi_route`]   | banked ITARGETSR0-7, SPI routing and re-routing    |
//! | `spi-1ofn`    | [`spi_1ofn`]    | an SPI for several cores is taken by exactly one   |
//!
//! [`common`] holds what they share: the `check!` macros, the verdict, the
//! IRQ entry that acknowledges and logs (per core), and bounded waits;
//! [`cores`] starts the other cores and runs steps on them.

#[macro_use]
pub mod common;

pub mod cores;
pub mod disabled;
pub mod eoimode;
pub mod level;
pub mod oneshot;
pub mod pmr;
pub mod preempt;
pub mod ptimer;
pub mod regs;
pub mod sgi;
pub mod sgi_smp;
pub mod sgi_sources;
pub mod spi_1ofn;
pub mod spi_route;
pub mod spi_state;
pub mod spurious;
pub mod unmapped;

use uirq_abi::boot::Program;
use uirq_guest::drivers::gicv2::Acknowledged;

/// A scenario's interrupt handler: gets the acknowledged interrupt and the
/// vector's entry timestamp, and must end the interrupt itself.
pub type Handler = fn(Acknowledged, u64);

/// Runs scenario `program` with its boot argument `x1` (only `unmapped`
/// takes one). Any other program (which `main` dispatches itself) is
/// refused as a bad boot argument.
pub fn run(program: Program, x1: u64) -> ! {
    let run: fn() -> ! = match program {
        Program::OneShot => oneshot::run,
        Program::PhysTimer => ptimer::run,
        Program::PmrMask => pmr::run,
        Program::Preemption => preempt::run,
        Program::EoiModeSplit => eoimode::run,
        Program::LevelRetrigger => level::run,
        Program::SgiSelf => sgi::run,
        Program::SpiState => spi_state::run,
        Program::Disabled => disabled::run,
        Program::Spurious => spurious::run,
        Program::RegisterRules => regs::run,
        Program::Unmapped => {
            unmapped::configure(x1);
            unmapped::run
        }
        Program::SgiSmp => sgi_smp::run,
        Program::SgiSources => sgi_sources::run,
        Program::SpiRoute => spi_route::run,
        Program::SpiOneOfN => spi_1ofn::run,
        Program::Timer
        | Program::Spin
        | Program::Fault
        | Program::Bench
        | Program::SmpTimer
        | Program::IpiStress
        | Program::DtInfo
        | Program::Chaos
        | Program::Echo => {
            println!("uirq-guest: `{}` is not a scenario", program.name());
            crate::psci::system_off(uirq_abi::exit::Status::BadBootArgs)
        }
    };
    common::start(program);
    crate::irq::set_handler(on_irq);
    run()
}

/// The handler of the running scenario.
fn handler(program: Program) -> Handler {
    match program {
        Program::OneShot => oneshot::on_irq,
        Program::PhysTimer => ptimer::on_irq,
        Program::PmrMask => pmr::on_irq,
        Program::Preemption => preempt::on_irq,
        Program::EoiModeSplit => eoimode::on_irq,
        Program::LevelRetrigger => level::on_irq,
        Program::SgiSelf => sgi::on_irq,
        Program::SpiState => spi_state::on_irq,
        Program::Disabled => disabled::on_irq,
        Program::SgiSmp => sgi_smp::on_irq,
        Program::SpiRoute => spi_route::on_irq,
        Program::SpiOneOfN => spi_1ofn::on_irq,
        _ => common::unexpected_irq,
    }
}

/// The IRQ entry while a scenario runs (called from the vector).
pub fn on_irq(entry_ticks: u64) {
    common::on_irq(entry_ticks);
}
