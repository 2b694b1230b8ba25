// LocalApic as a SystemC module: every delivery mode and shorthand reaches exactly the
// right APICs, ID changes redirect, disabled APICs accept only what the SDM allows, x2APIC
// MSR sends, the interface toward the core, and the timer.
#include <catch2/catch.hpp>

#include <algorithm>

#include "apic_platform.hpp"

using namespace vtx::apic;
using vtx::apic::test::Platform;
using vtx::apic::test::Script;
using vtx::model::Cost;

namespace {
double accept_cycle(const Platform& p, double send, int slot) {
    return send + p.cost(Cost::ApicIcrSend) + slot * p.cost(Cost::ApicBusSerialization) +
           p.cost(Cost::ApicBusLatency) + p.cost(Cost::ApicAccept);
}
std::uint64_t cycles(double c) { return static_cast<std::uint64_t>(c); }

std::uint64_t icr(std::uint8_t vector, DeliveryMode dm, std::uint32_t dest,
                  DestinationMode mode = DestinationMode::Physical,
                  Shorthand sh = Shorthand::None, bool x2apic = false) {
    Icr f;
    f.vector = vector;
    f.delivery_mode = dm;
    f.destination_mode = mode;
    f.level = Level::Assert;
    f.shorthand = sh;
    f.destination = dest;
    return encode_icr(f, x2apic);
}

std::vector<std::size_t> receivers(Platform& p, std::uint8_t vector, DeliveryMode dm) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < p.size(); ++i)
        for (const DeliveryRecord& r : p[i].delivery_log())
            if (r.vector == vector && r.delivery_mode == dm) out.push_back(i);
    return out;
}
using Indices = std::vector<std::size_t>;
}  // namespace

TEST_CASE("every delivery mode reaches exactly its destination", "[local-apic][delivery]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        p[0].send_ipi(icr(0x41, DeliveryMode::Fixed, 1));
        p.at_cycle(2000);
        p[0].send_ipi(icr(0x00, DeliveryMode::Nmi, 2));
        p.at_cycle(3000);
        p[0].send_ipi(icr(0x00, DeliveryMode::Smi, 3));
        p.at_cycle(4000);
        p[0].send_ipi(icr(0x00, DeliveryMode::Init, 4));
        p.at_cycle(5000);
        p[0].send_ipi(icr(0x9A, DeliveryMode::StartUp, 4));
        p.at_cycle(6000);
        p[0].send_ipi(icr(0x42, DeliveryMode::LowestPriority, 5));
    });
    sc_core::sc_start();
    CHECK(receivers(p, 0x41, DeliveryMode::Fixed) == Indices{1});
    CHECK(receivers(p, 0x00, DeliveryMode::Nmi) == Indices{2});
    CHECK(receivers(p, 0x00, DeliveryMode::Smi) == Indices{3});
    CHECK(receivers(p, 0x00, DeliveryMode::Init) == Indices{4});
    CHECK(receivers(p, 0x9A, DeliveryMode::StartUp) == Indices{4});
    CHECK(receivers(p, 0x42, DeliveryMode::LowestPriority) == Indices{5});
    CHECK(p[1].delivery_log()[0].cycle == cycles(accept_cycle(p, 1000, 1)));
    CHECK(p[2].delivery_log()[0].cycle == cycles(accept_cycle(p, 2000, 1)));
    CHECK(p[3].delivery_log()[0].cycle == cycles(accept_cycle(p, 3000, 1)));
    CHECK(p[4].delivery_log()[0].cycle == cycles(accept_cycle(p, 4000, 1)));
    CHECK(p[4].delivery_log()[1].cycle == cycles(accept_cycle(p, 5000, 1)));
    CHECK(p[5].delivery_log()[0].cycle == cycles(accept_cycle(p, 6000, 1)));
    CHECK(p[1].intr_pending());
    CHECK(p[2].nmi_pending());
    CHECK(p[3].smi_pending());
    CHECK(p[4].init_pending());
    CHECK(p[4].sipi_pending());
    CHECK(p[4].sipi_vector() == 0x9A);
    CHECK(p[5].intr_pending());
    for (std::size_t i : {0u, 6u, 7u}) CHECK(p[i].delivery_log().empty());
    CHECK_FALSE(p[2].intr_pending());
    p[2].clear_nmi();
    CHECK_FALSE(p[2].nmi_pending());
    p[4].clear_init();
    p[4].clear_sipi();
    CHECK_FALSE(p[4].init_pending());
    CHECK_FALSE(p[4].sipi_pending());
}

TEST_CASE("shorthand self loops back inside the sending APIC", "[local-apic][shorthand]") {
    Platform p(2);
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        p[1].send_ipi(icr(0x55, DeliveryMode::Fixed, 0, DestinationMode::Physical, Shorthand::Self));
    });
    sc_core::sc_start();
    REQUIRE(p[1].delivery_log().size() == 1);
    CHECK(p[1].delivery_log()[0].cycle ==
          cycles(1000 + p.cost(Cost::ApicIcrSend) + p.cost(Cost::ApicAccept)));
    CHECK(p[0].delivery_log().empty());
    CHECK(p.bus.loopbacks() == 1);
    CHECK(p.bus.busy_cycles() == 0);
}

TEST_CASE("every shorthand reaches exactly the right APICs", "[local-apic][shorthand]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        p[2].send_ipi(icr(0x50, DeliveryMode::Fixed, 7, DestinationMode::Physical, Shorthand::Self));
        p.at_cycle(1000);
        p[2].send_ipi(icr(0x51, DeliveryMode::Fixed, 7, DestinationMode::Physical, Shorthand::AllIncludingSelf));
        p.at_cycle(2000);
        p[2].send_ipi(icr(0x52, DeliveryMode::Fixed, 7, DestinationMode::Physical, Shorthand::AllExcludingSelf));
        p.at_cycle(3000);
        p[2].send_ipi(icr(0x00, DeliveryMode::Nmi, 0, DestinationMode::Physical, Shorthand::AllExcludingSelf));
        p.at_cycle(4000);
        p[2].send_ipi(icr(0x00, DeliveryMode::Init, 0, DestinationMode::Physical, Shorthand::AllExcludingSelf));
        p.at_cycle(5000);
        p[2].send_ipi(icr(0x10, DeliveryMode::StartUp, 0, DestinationMode::Physical, Shorthand::AllExcludingSelf));
    });
    sc_core::sc_start();
    const Indices others{0, 1, 3, 4, 5, 6, 7};
    CHECK(receivers(p, 0x50, DeliveryMode::Fixed) == Indices{2});
    CHECK(receivers(p, 0x51, DeliveryMode::Fixed) == Indices{0, 1, 2, 3, 4, 5, 6, 7});
    CHECK(receivers(p, 0x52, DeliveryMode::Fixed) == others);
    CHECK(receivers(p, 0x00, DeliveryMode::Nmi) == others);
    CHECK(receivers(p, 0x00, DeliveryMode::Init) == others);
    CHECK(receivers(p, 0x10, DeliveryMode::StartUp) == others);
}

TEST_CASE("invalid ICR combinations send nothing", "[local-apic][shorthand]") {
    Platform p(2);
    Script script("script", [&] {
        p.software_enable_all();
        p[0].send_ipi(icr(0x00, DeliveryMode::Nmi, 0, DestinationMode::Physical, Shorthand::Self));
        p[0].send_ipi(icr(0x00, DeliveryMode::Init, 0, DestinationMode::Physical, Shorthand::AllIncludingSelf));
        p[0].send_ipi(icr(0x40, DeliveryMode::Reserved3, 1));
        Icr deassert;  // INIT level de-assert
        deassert.delivery_mode = DeliveryMode::Init;
        deassert.level = Level::Deassert;
        deassert.trigger_mode = TriggerMode::Level;
        deassert.destination = 1;
        p[0].send_ipi(encode_icr(deassert, false));
    });
    sc_core::sc_start();
    CHECK(p.bus.messages() == 0);
    CHECK(p[0].ipis_refused() == 4);
    CHECK(p[0].ipis_sent() == 0);
    CHECK_FALSE(p[0].nmi_pending());
    CHECK_FALSE(p[1].init_pending());
}

TEST_CASE("lowest priority goes to the lowest PPR, ties to the lowest APIC ID",
          "[local-apic][lowest-priority]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        const std::uint8_t tprs[8] = {0x50, 0x40, 0x30, 0x20, 0x20, 0x60, 0x70, 0x80};
        for (std::size_t i = 0; i < 8; ++i) {
            p[i].mmio_write(kApicOffsetLdr, (1u << i) << kXApicLdrShift);
            p[i].mmio_write(kApicOffsetTpr, tprs[i]);
        }
        p.at_cycle(1000);
        p[7].send_ipi(icr(0x91, DeliveryMode::LowestPriority, 0x07, DestinationMode::Logical));
        p.at_cycle(2000);
        p[7].send_ipi(icr(0x92, DeliveryMode::LowestPriority, 0xFF, DestinationMode::Logical));
        p.at_cycle(3000);
        p[4].set_tpr(0x10);  // now APIC 4 is the lowest
        p[7].send_ipi(icr(0x93, DeliveryMode::LowestPriority, 0xFF, DestinationMode::Logical));
    });
    sc_core::sc_start();
    CHECK(receivers(p, 0x91, DeliveryMode::LowestPriority) == Indices{2});
    CHECK(receivers(p, 0x92, DeliveryMode::LowestPriority) == Indices{3});
    CHECK(receivers(p, 0x93, DeliveryMode::LowestPriority) == Indices{4});
    CHECK(p[2].delivery_log()[0].cycle == cycles(accept_cycle(p, 1000, 1)));
    CHECK(p.bus.deliveries() == 3);
}

TEST_CASE("logical flat and cluster multicast in xAPIC mode", "[local-apic][logical]") {
    Platform p(8);
    Script script("script", [&] {
        p.software_enable_all();
        // APICs 0-3 cluster 1, APICs 4-7 cluster 2, one member bit each
        for (std::size_t i = 0; i < 8; ++i) {
            const std::uint32_t cluster = i < 4 ? 1 : 2;
            const std::uint32_t logical = (cluster << kXApicClusterShift) | (1u << (i % 4));
            p[i].mmio_write(kApicOffsetDfr, kDfrModelCluster << kDfrModelShift);
            p[i].mmio_write(kApicOffsetLdr, logical << kXApicLdrShift);
        }
        p.at_cycle(1000);
        p[0].send_ipi(icr(0xA1, DeliveryMode::Fixed, 0x15, DestinationMode::Logical));
        p.at_cycle(2000);
        p[0].send_ipi(icr(0xA2, DeliveryMode::Fixed, 0x2C, DestinationMode::Logical));
    });
    sc_core::sc_start();
    CHECK(receivers(p, 0xA1, DeliveryMode::Fixed) == Indices{0, 2});
    CHECK(receivers(p, 0xA2, DeliveryMode::Fixed) == Indices{6, 7});
    CHECK(p[7].delivery_log()[0].cycle == cycles(accept_cycle(p, 2000, 2)));
}

TEST_CASE("an xAPIC ID change redirects physical IPIs", "[local-apic][id]") {
    Platform p(2);
    Script script("script", [&] {
        p.software_enable_all();
        p[1].mmio_write(kApicOffsetId, 0x20u << kXApicIdShift);
        p.at_cycle(1000);
        p[0].send_ipi(icr(0x41, DeliveryMode::Fixed, 0x20));
        p.at_cycle(2000);
        p[0].send_ipi(icr(0x42, DeliveryMode::Fixed, 0x01));  // the old ID
        p.at_cycle(3000);
        p[1].mmio_write(kApicOffsetId, 0x01u << kXApicIdShift);
        p[0].send_ipi(icr(0x43, DeliveryMode::Fixed, 0x01));
    });
    sc_core::sc_start();
    CHECK(p[1].apic_id() == 0x01);
    CHECK(receivers(p, 0x41, DeliveryMode::Fixed) == Indices{1});
    CHECK(receivers(p, 0x42, DeliveryMode::Fixed).empty());
    CHECK(receivers(p, 0x43, DeliveryMode::Fixed) == Indices{1});
    CHECK(p.bus.undeliverable() == 1);
}

TEST_CASE("a software-disabled APIC receives only NMI, SMI, INIT and SIPI", "[local-apic][disabled]") {
    Platform p(2);
    Script script("script", [&] {
        Platform::software_enable(p[0]);  // APIC 1 stays as after reset: software-disabled
        p.at_cycle(1000);
        p[0].send_ipi(icr(0x41, DeliveryMode::Fixed, 1));
        p[0].send_ipi(icr(0x42, DeliveryMode::LowestPriority, 1));
        p[0].send_ipi(icr(0x00, DeliveryMode::Nmi, 1));
        p[0].send_ipi(icr(0x00, DeliveryMode::Smi, 1));
        p[0].send_ipi(icr(0x00, DeliveryMode::Init, 1));
        p[0].send_ipi(icr(0x20, DeliveryMode::StartUp, 1));
    });
    sc_core::sc_start();
    CHECK_FALSE(p[1].software_enabled());
    std::vector<DeliveryMode> modes;
    for (const DeliveryRecord& r : p[1].delivery_log()) modes.push_back(r.delivery_mode);
    CHECK(modes == std::vector<DeliveryMode>{DeliveryMode::Nmi, DeliveryMode::Smi,
                                             DeliveryMode::Init, DeliveryMode::StartUp});
    CHECK(p[1].rejected_count() == 1);  // fixed; lowest priority found no enabled candidate
    CHECK(p[1].accepted_count(0x41) == 0);
    CHECK_FALSE(p[1].intr_pending());
    CHECK(p[1].nmi_pending());
    CHECK(p[1].init_pending());
    CHECK(p[1].sipi_pending());
    CHECK(p[1].sipi_vector() == 0x20);
    // the NMI took the third slot: after the fixed message and the lowest-priority one,
    // which found no software-enabled candidate but still crossed the interconnect
    CHECK(p.bus.undeliverable() == 1);
    CHECK(p[1].delivery_log()[0].cycle == cycles(accept_cycle(p, 1000, 3)));
}

TEST_CASE("a hardware-disabled APIC receives nothing", "[local-apic][disabled]") {
    Platform p(3);
    MsrResult disable;
    Script script("script", [&] {
        p.software_enable_all();
        disable = p[1].wrmsr(kMsrIa32ApicBase, kApicDefaultBaseAddress);  // EN = 0
        p.at_cycle(1000);
        p[0].send_ipi(icr(0x41, DeliveryMode::Fixed, 0xFF));
        p[0].send_ipi(icr(0x00, DeliveryMode::Nmi, 0, DestinationMode::Physical, Shorthand::AllExcludingSelf));
        p[0].send_ipi(icr(0x00, DeliveryMode::Init, 1));
    });
    sc_core::sc_start();
    CHECK_FALSE(disable.gp);
    CHECK(disable.cycles == p.cost(Cost::ApicMsrAccess));
    CHECK_FALSE(p[1].enabled());
    CHECK(p[1].delivery_log().empty());
    CHECK_FALSE(p[1].nmi_pending());
    CHECK_FALSE(p[1].init_pending());
    CHECK(receivers(p, 0x41, DeliveryMode::Fixed) == Indices{0, 2});
    CHECK(receivers(p, 0x00, DeliveryMode::Nmi) == Indices{2});
    CHECK(p[1].mmio_read(kApicOffsetId).claimed == false);
}

TEST_CASE("x2APIC: 32-bit IDs, cluster multicast and SELF IPI through MSRs", "[local-apic][x2apic]") {
    Platform p(std::vector<std::uint32_t>{0x10, 0x11, 0x12, 0x13, 0x120, 0x121, 0x122, 0x123});
    MsrResult send;
    Script script("script", [&] {
        for (std::size_t i = 0; i < p.size(); ++i) Platform::to_x2apic(p[i]);
        p.software_enable_all();
        p.at_cycle(1000);
        send = p[0].wrmsr(kX2ApicMsrIcr, icr(0xB1, DeliveryMode::Fixed, 0x00120005,
                                              DestinationMode::Logical, Shorthand::None, true));
        p.at_cycle(2000);
        p[0].wrmsr(kX2ApicMsrIcr, icr(0xB2, DeliveryMode::Fixed, 0x123, DestinationMode::Physical,
                                      Shorthand::None, true));
        p.at_cycle(3000);
        p[0].wrmsr(kX2ApicMsrIcr, icr(0xB3, DeliveryMode::Fixed, 0x23, DestinationMode::Physical,
                                      Shorthand::None, true));  // no such x2APIC ID
        p.at_cycle(4000);
        p[3].wrmsr(kX2ApicMsrSelfIpi, 0xB4);
        p.at_cycle(5000);
        p[0].send_ipi(icr(0xB5, DeliveryMode::Fixed, 0xFFFFFFFF, DestinationMode::Logical,
                          Shorthand::None, true));
    });
    sc_core::sc_start();
    CHECK_FALSE(send.gp);
    CHECK(send.cycles == p.cost(Cost::ApicMsrAccess));
    CHECK(p[4].x2apic_mode());
    CHECK(p[4].apic_id() == 0x120);
    CHECK(receivers(p, 0xB1, DeliveryMode::Fixed) == Indices{4, 6});
    CHECK(p[6].delivery_log()[0].cycle == cycles(accept_cycle(p, 1000, 2)));
    CHECK(receivers(p, 0xB2, DeliveryMode::Fixed) == Indices{7});
    CHECK(receivers(p, 0xB3, DeliveryMode::Fixed).empty());
    CHECK(receivers(p, 0xB4, DeliveryMode::Fixed) == Indices{3});
    CHECK(p[3].delivery_log()[0].cycle ==
          cycles(4000 + p.cost(Cost::ApicIcrSend) + p.cost(Cost::ApicAccept)));
    CHECK(receivers(p, 0xB5, DeliveryMode::Fixed) == Indices{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("x2APIC WRMSR faults send nothing", "[local-apic][x2apic]") {
    Platform p(2);
    MsrResult bad_icr, bad_mode, xapic_msr;
    Script script("script", [&] {
        xapic_msr = p[0].rdmsr(kX2ApicMsrId);  // still xAPIC
        for (std::size_t i = 0; i < p.size(); ++i) Platform::to_x2apic(p[i]);
        p.software_enable_all();
        bad_icr = p[0].wrmsr(kX2ApicMsrIcr, icr(0x41, DeliveryMode::Fixed, 1, DestinationMode::Physical,
                                                Shorthand::None, true) | (1ull << 13));
        p[0].send_ipi((icr(0x42, DeliveryMode::Fixed, 1, DestinationMode::Physical, Shorthand::None, true)) |
                      (1ull << 17));
        bad_mode = p[0].wrmsr(kMsrIa32ApicBase, kApicDefaultBaseAddress | kApicBaseGlobalEnable);
    });
    sc_core::sc_start();
    CHECK(xapic_msr.gp);
    CHECK(bad_icr.gp);
    CHECK(bad_mode.gp);
    CHECK(p[0].x2apic_mode());
    CHECK(p[0].ipis_refused() == 1);
    CHECK(p.bus.messages() == 0);
    CHECK(p[1].delivery_log().empty());
}

TEST_CASE("the core wakes at acceptance, acknowledges and EOIs", "[local-apic][core]") {
    Platform p(2);
    std::uint64_t woke = 0;
    std::uint8_t first = 0, second = 0, spurious = 0;
    bool pending_after_first_ack = true, pending_after_eoi = false;
    Script sender("sender", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        p[0].send_ipi(icr(0x61, DeliveryMode::Fixed, 1));
        p[0].send_ipi(icr(0x52, DeliveryMode::Fixed, 1));
    });
    Script core("core", [&] {
        sc_core::wait(p[1].interrupt_event());
        woke = p.now_cycle();
        sc_core::wait(p.clock.to_time(p.cost(Cost::ApicAccept) + p.cost(Cost::ApicBusSerialization)));
        first = p[1].acknowledge();
        pending_after_first_ack = p[1].intr_pending();  // 52H is below the 60H in service
        p[1].eoi();
        pending_after_eoi = p[1].intr_pending();
        second = p[1].acknowledge();
        p[1].eoi();
        spurious = p[1].acknowledge();
    });
    sc_core::sc_start();
    CHECK(woke == cycles(accept_cycle(p, 1000, 1)));
    CHECK(first == 0x61);
    CHECK_FALSE(pending_after_first_ack);
    CHECK(pending_after_eoi);
    CHECK(second == 0x52);
    CHECK(spurious == 0xFF);
    CHECK(p[1].ack_cycles() == p.cost(Cost::ApicInterruptAck));
    CHECK(p[1].eoi_cycles() == p.cost(Cost::ApicEoi));
    CHECK_FALSE(p[1].state().isr().any());
}

TEST_CASE("lowering TPR signals an interrupt it was holding back", "[local-apic][core]") {
    Platform p(2);
    std::uint64_t woke = 0;
    Script sender("sender", [&] {
        p.software_enable_all();
        p[1].set_tpr(0xF0);
        p.at_cycle(1000);
        p[0].send_ipi(icr(0x61, DeliveryMode::Fixed, 1));
        p.at_cycle(5000);
        p[1].mmio_write(kApicOffsetTpr, 0x00);
    });
    Script core("core", [&] {
        sc_core::wait(p[1].interrupt_event());
        woke = p.now_cycle();
    });
    sc_core::sc_start();
    CHECK(woke == 5000);
    CHECK(p[1].intr_pending());
}

TEST_CASE("a second IPI with a pending vector coalesces", "[local-apic][core]") {
    Platform p(2);
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        p[0].send_ipi(icr(0x61, DeliveryMode::Fixed, 1));
        p[0].send_ipi(icr(0x61, DeliveryMode::Fixed, 1));
    });
    sc_core::sc_start();
    CHECK(p[1].accepted_count(0x61) == 2);
    CHECK(p[1].coalesced_count(0x61) == 1);
    REQUIRE(p[1].delivery_log().size() == 2);
    CHECK(p[1].delivery_log()[1].outcome == AcceptOutcome::Coalesced);
    CHECK(p[1].acknowledge() == 0x61);
    CHECK_FALSE(p[1].intr_pending());
}

TEST_CASE("illegal vectors are flagged by sender and receiver", "[local-apic][esr]") {
    Platform p(2);
    std::uint32_t sender_esr = 0, receiver_esr = 0;
    Script script("script", [&] {
        p.software_enable_all();
        p[0].send_ipi(icr(0x0E, DeliveryMode::Fixed, 1));
        sc_core::wait(p.clock.to_time(10000));
        p[0].mmio_write(kApicOffsetEsr, 0);
        sender_esr = p[0].mmio_read(kApicOffsetEsr).value;
        p[1].mmio_write(kApicOffsetEsr, 0);
        receiver_esr = p[1].mmio_read(kApicOffsetEsr).value;
    });
    sc_core::sc_start();
    CHECK(sender_esr == kEsrSendIllegalVector);
    CHECK(receiver_esr == kEsrReceivedIllegalVector);
    CHECK(p[1].delivery_log().empty());
    CHECK(p[1].rejected_count() == 1);
}

TEST_CASE("the APIC timer fires one-shot and periodic interrupts", "[local-apic][timer]") {
    Platform p(1);
    std::uint32_t mid_count = 0, after_count = 1;
    std::vector<std::uint64_t> fired;
    Script script("script", [&] {
        p.software_enable_all();
        p[0].mmio_write(kApicOffsetTimerDivide, 0xB);  // divide by 1
        p[0].mmio_write(kApicOffsetLvtTimer, 0x30);    // one-shot, vector 30H
        p.at_cycle(1000);
        p[0].mmio_write(kApicOffsetTimerInitialCount, 400);
        p.at_cycle(1100);
        mid_count = p[0].mmio_read(kApicOffsetTimerCurrentCount).value;
        sc_core::wait(p[0].interrupt_event());
        fired.push_back(p.now_cycle());
        p[0].acknowledge();
        p[0].eoi();
        after_count = p[0].mmio_read(kApicOffsetTimerCurrentCount).value;
        // periodic, divide by 2: every 2 x 100 cycles
        p[0].mmio_write(kApicOffsetTimerDivide, 0x0);
        p[0].mmio_write(kApicOffsetLvtTimer, (kLvtTimerModePeriodic << kLvtTimerModeShift) | 0x31);
        p.at_cycle(3000);
        p[0].mmio_write(kApicOffsetTimerInitialCount, 100);
        for (int i = 0; i < 3; ++i) {
            sc_core::wait(p[0].interrupt_event());
            fired.push_back(p.now_cycle());
            p[0].acknowledge();
            p[0].eoi();
        }
        p[0].mmio_write(kApicOffsetTimerInitialCount, 0);  // stops the timer
    });
    sc_core::sc_start();
    CHECK(mid_count == 300);
    CHECK(after_count == 0);
    CHECK(fired == std::vector<std::uint64_t>{1400, 3200, 3400, 3600});
    CHECK(script.finished());
}

TEST_CASE("an ICR write annotated ahead of SystemC time sends at the annotated time",
          "[local-apic][decoupled]") {
    // Decoupled mode (TLM-2.0 loosely timed): a core that runs ahead of SystemC time passes
    // its local offset with the register access; the message leaves at that time.
    Platform p(2);
    constexpr double kOffset = 700;
    Script script("script", [&] {
        p.software_enable_all();
        p.at_cycle(1000);
        p[0].mmio_write(kApicOffsetIcrHi, 1u << 24);
        p[0].mmio_write(kApicOffsetIcrLo, static_cast<std::uint32_t>(icr(0x51, DeliveryMode::Fixed, 1)),
                        p.clock.to_time(kOffset));
        CHECK(p.now_cycle() == 1000);  // the access itself did not wait
    });
    sc_core::sc_start();
    REQUIRE(p[1].delivery_log().size() == 1);
    CHECK(p[1].delivery_log()[0].vector == 0x51);
    CHECK(p[1].delivery_log()[0].cycle == cycles(accept_cycle(p, 1000 + kOffset, 1)));
}
