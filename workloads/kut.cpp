#include "workloads/kut.hpp"

#include "cpu/guest_context.hpp"

namespace vtx::workloads::kut {

std::uint32_t Lib::apic_read(std::uint32_t reg) {
    if (m_x2apic) return static_cast<std::uint32_t>(m_g.rdmsr(kX2apicMsrBase + (reg >> 4)));
    return m_g.mmio_read32(cpu::kGuestApicBase + reg);
}

void Lib::apic_write(std::uint32_t reg, std::uint32_t value) {
    if (m_x2apic)
        m_g.wrmsr(kX2apicMsrBase + (reg >> 4), value);
    else
        m_g.mmio_write32(cpu::kGuestApicBase + reg, value);
}

std::uint32_t Lib::apic_id() {
    const std::uint32_t id = apic_read(kApicId);
    return m_x2apic ? id : id >> kXapicIdShift;
}

PassResult do_test(cpu::GuestCpu& g, std::uint64_t goal, const std::function<void()>& start_pass,
                   const std::function<void()>& func) {
    PassResult r;
    std::uint64_t iterations = 32;  // doubled before each pass
    std::uint64_t t1 = 0, t2 = 0;
    do {
        if (start_pass) start_pass();
        iterations *= 2;
        t1 = g.rdtsc();
        for (std::uint64_t i = 0; i < iterations; ++i) {
            g.mark("iteration");  // vtxsim explain shows the last complete one
            func();
        }
        t2 = g.rdtsc();
        r.total += iterations;
    } while (t2 - t1 < goal);
    r.iterations = iterations;
    r.ticks = t2 - t1;
    return r;
}

void Lib::apic_icr_write(std::uint32_t value, std::uint32_t dest) {
    if (m_x2apic) {
        m_g.mfence();
        m_g.wrmsr(kX2apicMsrBase + (kApicIcr >> 4), (std::uint64_t{dest} << 32) | value);
        return;
    }
    while (m_g.mmio_read32(cpu::kGuestApicBase + kApicIcr) & kApicIcrBusy) {
    }
    m_g.mmio_write32(cpu::kGuestApicBase + kApicIcr2, dest << 24);
    m_g.mmio_write32(cpu::kGuestApicBase + kApicIcr, value);
}

void on_cpu_wait(Lib& lib, const SmpData& d, std::uint32_t target) {
    cpu::GuestCpu& g = lib.cpu();
    g.spin_lock(d.ipi_lock());
    g.lock_add(d.active_cpus(), 1);
    g.store64(d.ipi_done(), 0);
    g.store64(d.ipi_function(), 1);  // &nop
    g.store64(d.ipi_data(), 0);
    g.store64(d.ipi_wait(), 1);
    lib.apic_icr_write(kApicIntAssert | kApicDestPhysical | kApicDmFixed | kIpiVector, target);
    // while (!ipi_done) ;  (a tight loop, no PAUSE)
    g.spin_until_value(d.ipi_done(), 8, [](std::uint64_t done) { return done != 0; }, /*pause=*/false);
    g.spin_unlock(d.ipi_lock());
}

void install_ipi_handler(cpu::GuestCpu& g, bool x2apic, const SmpData& d) {
    g.set_handler(kIpiVector, [x2apic, d](cpu::GuestCpu& c, std::uint8_t) {
        Lib lib(c, x2apic);
        c.load64(d.ipi_function());
        c.load64(d.ipi_data());
        const bool wait = c.load64(d.ipi_wait()) != 0;
        // function(data): nop
        c.lock_add(d.active_cpus(), ~std::uint64_t{0});
        if (wait) {
            c.store64(d.ipi_done(), 1);
            lib.eoi();
        }
    });
}

}  // namespace vtx::workloads::kut
