// ApicState: IA32_APIC_BASE and mode transitions, IDs, LDR/DFR, TPR/PPR, IRR/ISR priority,
// acknowledge, EOI, acceptance rules, software disable, ESR, LVT, xAPIC MMIO view.
#include <catch2/catch.hpp>

#include <vector>

#include "apic/apic_state.hpp"

using namespace vtx::apic;

namespace {
constexpr std::uint64_t kEn = kApicBaseGlobalEnable;
constexpr std::uint64_t kExtd = kApicBaseX2ApicEnable;
constexpr std::uint64_t kBase = kApicDefaultBaseAddress;

InterruptMessage fixed(std::uint8_t vector, DeliveryMode dm = DeliveryMode::Fixed) {
    InterruptMessage m;
    m.vector = vector;
    m.delivery_mode = dm;
    return m;
}

void software_enable(ApicState& s) {
    REQUIRE(s.write_mmio(kApicOffsetSvr, kSvrApicSoftwareEnable | 0xFF).ok());
}

ApicState state_in(ApicMode mode) {
    ApicState s(0x21);
    switch (mode) {
        case ApicMode::XApic: break;
        case ApicMode::X2Apic: REQUIRE(s.write_apic_base(kBase | kEn | kExtd).ok()); break;
        case ApicMode::Disabled: REQUIRE(s.write_apic_base(kBase).ok()); break;
    }
    REQUIRE(s.mode() == mode);
    return s;
}

// Puts `vector` in service: accepted, then acknowledged with TPR 0.
void put_in_service(ApicState& s, std::uint8_t vector) {
    const std::uint8_t tpr = s.tpr();
    s.set_tpr(0);
    REQUIRE(s.accept(fixed(vector)) == AcceptOutcome::Accepted);
    REQUIRE(s.acknowledge() == vector);
    s.set_tpr(tpr);
}
}  // namespace

TEST_CASE("reset state is xAPIC, enabled, software-disabled, masked", "[apic-state]") {
    const ApicState s(0x123, true);
    CHECK(s.mode() == ApicMode::XApic);
    CHECK(s.apic_base() == (kBase | kEn | kApicBaseBsp));
    CHECK(ApicState(1).apic_base() == (kBase | kEn));
    CHECK(s.hardware_enabled());
    CHECK_FALSE(s.software_enabled());
    CHECK(s.svr() == kSvrResetValue);
    CHECK(s.dfr() == 0xFFFFFFFFu);
    CHECK(s.ldr() == 0);
    CHECK(s.tpr() == 0);
    for (Lvt lvt : kAllLvts) CHECK(s.lvt(lvt) == kLvtMask);
    CHECK(s.x2apic_id() == 0x123);
    CHECK(s.xapic_id() == 0x23);  // the low 8 bits of the x2APIC ID
    CHECK(s.apic_id() == 0x23);
}

TEST_CASE("IA32_APIC_BASE transitions follow the x2APIC state diagram", "[apic-state][mode]") {
    struct Row {
        ApicMode from;
        std::uint64_t value;
        bool gp;
        ApicMode to;
    };
    const std::vector<Row> rows = {
        {ApicMode::XApic, kBase | kEn, false, ApicMode::XApic},
        {ApicMode::XApic, kBase | kEn | kExtd, false, ApicMode::X2Apic},
        {ApicMode::XApic, kBase, false, ApicMode::Disabled},
        {ApicMode::XApic, kBase | kExtd, true, ApicMode::XApic},  // invalid EN=0, EXTD=1
        {ApicMode::X2Apic, kBase | kEn, true, ApicMode::X2Apic},  // x2APIC -> xAPIC
        {ApicMode::X2Apic, kBase | kEn | kExtd, false, ApicMode::X2Apic},
        {ApicMode::X2Apic, kBase, false, ApicMode::Disabled},
        {ApicMode::X2Apic, kBase | kExtd, true, ApicMode::X2Apic},
        {ApicMode::Disabled, kBase | kEn, false, ApicMode::XApic},
        {ApicMode::Disabled, kBase | kEn | kExtd, true, ApicMode::Disabled},  // disabled -> x2APIC
        {ApicMode::Disabled, kBase, false, ApicMode::Disabled},
        {ApicMode::Disabled, kBase | kExtd, true, ApicMode::Disabled},
    };
    for (const Row& row : rows) {
        INFO(apic_mode_name(row.from) << " <- 0x" << std::hex << row.value);
        ApicState s = state_in(row.from);
        const WriteResult w = s.write_msr(kMsrIa32ApicBase, row.value);
        CHECK(w.ok() == !row.gp);
        CHECK(s.mode() == row.to);
        CHECK(w.mode_changed == (!row.gp && row.from != row.to));
    }
}

TEST_CASE("IA32_APIC_BASE reserved bits raise #GP", "[apic-state][mode]") {
    for (unsigned bit : {0u, 7u, 9u, 46u, 63u}) {
        INFO("bit " << bit);
        ApicState s(0);
        CHECK(s.write_apic_base(kBase | kEn | (1ull << bit)).status == AccessStatus::GeneralProtection);
        CHECK(s.apic_base() == (kBase | kEn));
    }
    ApicState wide(0, false, 52);
    CHECK(wide.write_apic_base((1ull << 50) | kEn).ok());
    CHECK(wide.base_address() == (1ull << 50));
    ApicState s(0);
    CHECK(s.write_apic_base(0xFED00000ull | kEn | kApicBaseBsp).ok());  // relocate, set BSP
    CHECK(s.base_address() == 0xFED00000ull);
    CHECK(s.bsp());
    CHECK(s.read_msr(kMsrIa32ApicBase).value == (0xFED00000ull | kEn | kApicBaseBsp));
}

TEST_CASE("disabling the APIC loses its registers but keeps its IDs", "[apic-state][mode]") {
    ApicState s(0x105);
    software_enable(s);
    REQUIRE(s.write_mmio(kApicOffsetId, 0x42000000).ok());
    s.set_tpr(0x30);
    REQUIRE(s.accept(fixed(0x80)) == AcceptOutcome::Accepted);
    REQUIRE(s.write_apic_base(kBase | kEn | kExtd).ok());
    CHECK(s.apic_id() == 0x105);  // x2APIC ID: the hardware one, not the xAPIC ID written
    CHECK(s.tpr() == 0x30);       // registers survive xAPIC -> x2APIC
    CHECK(s.irr().test(0x80));
    REQUIRE(s.write_apic_base(kBase).ok());
    CHECK_FALSE(s.hardware_enabled());
    CHECK(s.tpr() == 0);
    CHECK_FALSE(s.irr().any());
    CHECK(s.svr() == kSvrResetValue);
    CHECK(s.x2apic_id() == 0x105);
    CHECK(s.xapic_id() == 0x42);
    CHECK(s.accept(fixed(0x80)) == AcceptOutcome::RejectedHardwareDisabled);
    CHECK(s.accept(fixed(0, DeliveryMode::Nmi)) == AcceptOutcome::RejectedHardwareDisabled);
    CHECK(s.read_mmio(kApicOffsetId).status == AccessStatus::NotClaimed);
    REQUIRE(s.write_apic_base(kBase | kEn).ok());
    CHECK(s.apic_id() == 0x42);
}

TEST_CASE("xAPIC ID is writable, x2APIC ID is not", "[apic-state][id]") {
    ApicState s(3);
    CHECK(s.read_mmio(kApicOffsetId).value == 0x03000000u);
    REQUIRE(s.write_mmio(kApicOffsetId, 0x20FFFFFF).ok());  // bits 23:0 reserved
    CHECK(s.apic_id() == 0x20);
    CHECK(s.read_mmio(kApicOffsetId).value == 0x20000000u);
    CHECK(s.destination_view().apic_id == 0x20);
    REQUIRE(s.write_apic_base(kBase | kEn | kExtd).ok());
    CHECK(s.read_msr(kX2ApicMsrId).value == 3);
    CHECK(s.write_msr(kX2ApicMsrId, 7).status == AccessStatus::GeneralProtection);
    CHECK(s.apic_id() == 3);
}

TEST_CASE("LDR and DFR: xAPIC writable, x2APIC LDR derived", "[apic-state][id]") {
    ApicState s(0x25);
    REQUIRE(s.write_mmio(kApicOffsetLdr, 0xAB123456).ok());
    CHECK(s.read_mmio(kApicOffsetLdr).value == 0xAB000000u);
    REQUIRE(s.write_mmio(kApicOffsetDfr, 0x00000000).ok());
    CHECK(s.read_mmio(kApicOffsetDfr).value == 0x0FFFFFFFu);
    CHECK(s.destination_view().dfr_model == kDfrModelCluster);
    REQUIRE(s.write_mmio(kApicOffsetDfr, 0xF0000000).ok());
    CHECK(s.destination_view().dfr_model == kDfrModelFlat);
    REQUIRE(s.write_apic_base(kBase | kEn | kExtd).ok());
    CHECK(s.read_msr(kX2ApicMsrLdr).value == 0x00020020u);
    CHECK(s.write_msr(kX2ApicMsrLdr, 0x00020020u).status == AccessStatus::GeneralProtection);
    CHECK(s.destination_view().x2apic);
}

TEST_CASE("PPR is TPR or the in-service class, whichever is higher", "[apic-state][priority]") {
    struct Row {
        std::uint8_t tpr;
        int isr;  // -1: nothing in service
        std::uint8_t ppr;
    };
    const std::vector<Row> rows = {
        {0x00, -1, 0x00}, {0x35, -1, 0x35}, {0x35, 0x41, 0x40}, {0x45, 0x41, 0x45},
        {0x40, 0x4F, 0x40}, {0x50, 0x61, 0x60}, {0x7F, 0x61, 0x7F}, {0x00, 0xFE, 0xF0},
    };
    for (const Row& row : rows) {
        INFO("TPR " << int(row.tpr) << " ISR " << row.isr);
        ApicState s(0);
        software_enable(s);
        if (row.isr >= 0) put_in_service(s, static_cast<std::uint8_t>(row.isr));
        s.set_tpr(row.tpr);
        CHECK(int(s.ppr()) == int(row.ppr));
        CHECK(s.read_mmio(kApicOffsetPpr).value == row.ppr);
    }
}

TEST_CASE("APR follows the arbitration-priority rule", "[apic-state][priority]") {
    ApicState s(0);
    software_enable(s);
    s.set_tpr(0x35);
    CHECK(s.apr() == 0x35);
    REQUIRE(s.accept(fixed(0x52)) == AcceptOutcome::Accepted);
    CHECK(s.apr() == 0x50);  // IRRV class above TPR class
    put_in_service(s, 0x61);
    CHECK(s.apr() == 0x60);
    CHECK(s.read_mmio(kApicOffsetApr).value == 0x60);
}

TEST_CASE("the highest IRR class above PPR is delivered, EOI retires the highest ISR",
          "[apic-state][priority]") {
    ApicState s(0);
    software_enable(s);
    CHECK_FALSE(s.highest_irr());
    CHECK(s.accept(fixed(0x31)) == AcceptOutcome::Accepted);
    CHECK(s.accept(fixed(0x52)) == AcceptOutcome::Accepted);
    CHECK(s.accept(fixed(0x45)) == AcceptOutcome::Accepted);
    CHECK(*s.highest_irr() == 0x52);
    CHECK(s.has_deliverable_interrupt());
    CHECK(s.acknowledge() == 0x52);
    CHECK(s.isr().test(0x52));
    CHECK_FALSE(s.irr().test(0x52));
    CHECK(s.ppr() == 0x50);
    CHECK(*s.highest_irr() == 0x45);
    CHECK_FALSE(s.has_deliverable_interrupt());  // class 4 does not interrupt class 5
    CHECK(s.accept(fixed(0x55)) == AcceptOutcome::Accepted);
    CHECK_FALSE(s.has_deliverable_interrupt());  // same class: waits for the EOI
    CHECK(s.accept(fixed(0x61)) == AcceptOutcome::Accepted);
    CHECK(s.has_deliverable_interrupt());  // class 6 nests
    CHECK(s.acknowledge() == 0x61);
    CHECK(*s.highest_isr() == 0x61);
    auto e = s.eoi();
    REQUIRE(e);
    CHECK(e->vector == 0x61);
    CHECK_FALSE(e->level_triggered);
    CHECK(*s.highest_isr() == 0x52);
    CHECK_FALSE(s.has_deliverable_interrupt());
    e = s.eoi();
    REQUIRE(e);
    CHECK(e->vector == 0x52);
    CHECK(s.has_deliverable_interrupt());
    CHECK(s.acknowledge() == 0x55);
    CHECK(s.eoi()->vector == 0x55);
    CHECK(s.acknowledge() == 0x45);
    CHECK(s.eoi()->vector == 0x45);
    CHECK(s.acknowledge() == 0x31);
    CHECK(s.eoi()->vector == 0x31);
    CHECK_FALSE(s.eoi());  // nothing in service
}

TEST_CASE("TPR holds back interrupts of its class and below", "[apic-state][priority]") {
    ApicState s(0);
    software_enable(s);
    REQUIRE(s.accept(fixed(0x61)) == AcceptOutcome::Accepted);
    s.set_tpr(0x60);
    CHECK_FALSE(s.has_deliverable_interrupt());
    REQUIRE(s.write_mmio(kApicOffsetTpr, 0x5F).ok());
    CHECK(s.tpr() == 0x5F);
    CHECK(s.has_deliverable_interrupt());
    REQUIRE(s.write_mmio(kApicOffsetTpr, 0xFFFFFF70).ok());  // xAPIC: bits 31:8 ignored
    CHECK(s.tpr() == 0x70);
}

TEST_CASE("INTA with nothing deliverable returns the spurious vector", "[apic-state][priority]") {
    ApicState s(0);
    REQUIRE(s.write_mmio(kApicOffsetSvr, kSvrApicSoftwareEnable | 0xEF).ok());
    CHECK(s.spurious_vector() == 0xEF);
    CHECK(s.acknowledge() == 0xEF);
    CHECK_FALSE(s.isr().any());
    REQUIRE(s.accept(fixed(0x40)) == AcceptOutcome::Accepted);
    s.set_tpr(0x40);  // raised between INTR and INTA
    CHECK(s.acknowledge() == 0xEF);
    CHECK(s.irr().test(0x40));
    CHECK_FALSE(s.isr().any());
}

TEST_CASE("an IRR bit already set coalesces the message", "[apic-state][accept]") {
    ApicState s(0);
    software_enable(s);
    CHECK(s.accept(fixed(0x40)) == AcceptOutcome::Accepted);
    CHECK(s.accept(fixed(0x40, DeliveryMode::LowestPriority)) == AcceptOutcome::Coalesced);
    CHECK(s.acknowledge() == 0x40);
    CHECK(s.accept(fixed(0x40)) == AcceptOutcome::Accepted);  // in service: IRR may be set again
    CHECK(s.irr().test(0x40));
    CHECK(s.isr().test(0x40));
}

TEST_CASE("level-triggered vectors set TMR and EOI reports them", "[apic-state][accept]") {
    ApicState s(0);
    software_enable(s);
    InterruptMessage m = fixed(0x70);
    m.trigger_mode = TriggerMode::Level;
    REQUIRE(s.accept(m) == AcceptOutcome::Accepted);
    CHECK(s.tmr().test(0x70));
    CHECK(s.read_mmio(kApicOffsetTmr0 + 3 * kApicRegisterStride).value == (1u << (0x70 - 96)));
    REQUIRE(s.acknowledge() == 0x70);
    auto e = s.eoi();
    REQUIRE(e);
    CHECK(e->level_triggered);
    CHECK(e->broadcast);
    REQUIRE(s.write_mmio(kApicOffsetSvr, kSvrApicSoftwareEnable | kSvrEoiBroadcastSuppression | 0xFF).ok());
    REQUIRE(s.accept(m) == AcceptOutcome::Accepted);
    REQUIRE(s.acknowledge() == 0x70);
    e = s.eoi();
    CHECK(e->level_triggered);
    CHECK_FALSE(e->broadcast);
    REQUIRE(s.accept(fixed(0x70)) == AcceptOutcome::Accepted);  // now edge: TMR cleared
    CHECK_FALSE(s.tmr().test(0x70));
}

TEST_CASE("a software-disabled APIC takes only NMI, SMI, INIT and SIPI", "[apic-state][accept]") {
    ApicState s(0);  // SVR reset value: software-disabled
    CHECK(s.accept(fixed(0x40)) == AcceptOutcome::RejectedSoftwareDisabled);
    CHECK(s.accept(fixed(0x40, DeliveryMode::LowestPriority)) == AcceptOutcome::RejectedSoftwareDisabled);
    CHECK(s.accept(fixed(0, DeliveryMode::Nmi)) == AcceptOutcome::NmiLatched);
    CHECK(s.accept(fixed(0, DeliveryMode::Smi)) == AcceptOutcome::SmiLatched);
    CHECK(s.accept(fixed(0, DeliveryMode::Init)) == AcceptOutcome::InitLatched);
    CHECK(s.accept(fixed(0x9A, DeliveryMode::StartUp)) == AcceptOutcome::StartUpLatched);
    CHECK(s.nmi_pending());
    CHECK(s.smi_pending());
    CHECK(s.init_pending());
    CHECK(s.sipi_pending());
    CHECK(s.sipi_vector() == 0x9A);
    CHECK(s.accept(fixed(0x10, DeliveryMode::StartUp)) == AcceptOutcome::StartUpLatched);
    CHECK(s.sipi_vector() == 0x10);  // the last SIPI's vector
    s.clear_nmi();
    s.clear_init();
    s.clear_sipi();
    s.clear_smi();
    CHECK_FALSE(s.nmi_pending());
    CHECK_FALSE(s.init_pending());
    CHECK_FALSE(s.sipi_pending());
    CHECK_FALSE(s.smi_pending());
    CHECK_FALSE(s.irr().any());
}

TEST_CASE("software disable holds IRR and ISR and masks the LVT", "[apic-state][accept]") {
    ApicState s(0);
    software_enable(s);
    REQUIRE(s.write_mmio(kApicOffsetLvtTimer, 0x00000030).ok());
    CHECK(s.lvt(Lvt::Timer) == 0x30);
    REQUIRE(s.accept(fixed(0x40)) == AcceptOutcome::Accepted);
    put_in_service(s, 0x90);
    REQUIRE(s.write_mmio(kApicOffsetSvr, 0xFF).ok());
    CHECK_FALSE(s.software_enabled());
    CHECK(s.irr().test(0x40));
    CHECK(s.isr().test(0x90));
    CHECK_FALSE(s.has_deliverable_interrupt());
    for (Lvt lvt : kAllLvts) CHECK((s.lvt(lvt) & kLvtMask) != 0);
    REQUIRE(s.write_mmio(kApicOffsetLvtTimer, 0x00000031).ok());  // mask cannot be cleared
    CHECK(s.lvt(Lvt::Timer) == (kLvtMask | 0x31));
    CHECK(s.eoi()->vector == 0x90);
    software_enable(s);
    CHECK(s.has_deliverable_interrupt());
    CHECK(s.acknowledge() == 0x40);
}

TEST_CASE("illegal vectors are refused and logged in the ESR", "[apic-state][esr]") {
    ApicState s(0);
    software_enable(s);
    CHECK(s.accept(fixed(0x0F)) == AcceptOutcome::RejectedIllegalVector);
    CHECK_FALSE(s.irr().any());
    CHECK(s.read_mmio(kApicOffsetEsr).value == 0);  // not visible before an ESR write
    REQUIRE(s.write_mmio(kApicOffsetEsr, 0).ok());
    CHECK(s.read_mmio(kApicOffsetEsr).value == kEsrReceivedIllegalVector);
    REQUIRE(s.write_mmio(kApicOffsetEsr, 0).ok());
    CHECK(s.read_mmio(kApicOffsetEsr).value == 0);
}

TEST_CASE("reserved xAPIC offsets read 0 and raise the error interrupt", "[apic-state][esr]") {
    ApicState s(0);
    software_enable(s);
    REQUIRE(s.write_mmio(kApicOffsetLvtError, 0xFE).ok());
    for (std::uint32_t offset : {0x000u, 0x010u, 0x040u, 0x3F0u, 0x3A0u, 0x400u, 0x024u}) {
        INFO("offset 0x" << std::hex << offset);
        CHECK(s.read_mmio(offset).value == 0);
    }
    REQUIRE(s.write_mmio(kApicOffsetEsr, 0).ok());
    CHECK(s.esr() == kEsrIllegalRegisterAddress);
    CHECK(s.irr().test(0xFE));  // LVT error vector
}

TEST_CASE("xAPIC read-only and write-only registers", "[apic-state][mmio]") {
    ApicState s(0);
    software_enable(s);
    CHECK(s.read_mmio(kApicOffsetVersion).value == kApicVersionValue);
    CHECK((kApicVersionValue & 0xFF) == 0x15);
    CHECK(((kApicVersionValue >> 16) & 0xFF) == 6);  // max LVT entry: 7 entries
    REQUIRE(s.write_mmio(kApicOffsetVersion, 0).ok());  // ignored
    CHECK(s.read_mmio(kApicOffsetVersion).value == kApicVersionValue);
    REQUIRE(s.accept(fixed(0x40)) == AcceptOutcome::Accepted);
    REQUIRE(s.write_mmio(kApicOffsetIrr0 + 2 * kApicRegisterStride, 0).ok());  // ignored
    CHECK(s.read_mmio(kApicOffsetIrr0 + 2 * kApicRegisterStride).value == 1u);
    REQUIRE(s.write_mmio(kApicOffsetPpr, 0xFF).ok());
    CHECK(s.ppr() == 0);
    CHECK(s.read_mmio(kApicOffsetEoi).value == 0);
    CHECK(s.read_mmio(kApicOffsetRrd).value == 0);
    REQUIRE(s.acknowledge() == 0x40);
    const WriteResult w = s.write_mmio(kApicOffsetEoi, 0x1234);  // any value
    REQUIRE(w.eoi);
    CHECK(w.eoi->vector == 0x40);
}

TEST_CASE("xAPIC ICR: ICR_LO write sends, delivery status reads idle", "[apic-state][mmio][icr]") {
    ApicState s(0);
    WriteResult w = s.write_mmio(kApicOffsetIcrHi, 0x05FFFFFF);
    CHECK_FALSE(w.send_icr);
    CHECK(s.read_mmio(kApicOffsetIcrHi).value == 0x05000000u);
    w = s.write_mmio(kApicOffsetIcrLo, 0xFFF3D031);  // reserved bits and delivery status set
    REQUIRE(w.send_icr);
    CHECK(*w.send_icr == 0x050000000000C031ull);  // ICR_HI:ICR_LO with reserved bits dropped
    CHECK(s.read_mmio(kApicOffsetIcrLo).value == 0x0000C031u);
    CHECK((s.read_mmio(kApicOffsetIcrLo).value & kIcrDeliveryStatus) == 0);
}

TEST_CASE("LVT entries keep read-only and reserved bits", "[apic-state][lvt]") {
    ApicState s(0);
    software_enable(s);
    REQUIRE(s.write_mmio(kApicOffsetLvtLint0, 0xFFFFFFFF).ok());
    CHECK(s.lvt(Lvt::Lint0) == (lvt_writable_bits(Lvt::Lint0)));
    CHECK((s.lvt(Lvt::Lint0) & (kLvtRemoteIrr | kLvtDeliveryStatus)) == 0);
    REQUIRE(s.write_mmio(kApicOffsetLvtTimer, 0xFFFFFFFF).ok());
    CHECK(s.lvt(Lvt::Timer) == (kLvtVectorMask | kLvtMask | (1u << kLvtTimerModeShift)));
    REQUIRE(s.write_mmio(kApicOffsetLvtError, 0xFFFFFFFF).ok());
    CHECK(s.lvt(Lvt::Error) == (kLvtVectorMask | kLvtMask));
    REQUIRE(s.write_mmio(kApicOffsetTimerDivide, 0xFFFFFFFF).ok());
    CHECK(s.timer_divide_config() == 0xB);
    CHECK(timer_divisor(0xB) == 1);
    CHECK(timer_divisor(0x0) == 2);
    CHECK(timer_divisor(0x3) == 16);
    CHECK(timer_divisor(0xA) == 128);
}

TEST_CASE("local interrupt sources go through their LVT entry", "[apic-state][lvt]") {
    ApicState s(0);
    software_enable(s);
    CHECK(s.raise_local(Lvt::Timer) == AcceptOutcome::Ignored);  // masked
    REQUIRE(s.write_mmio(kApicOffsetLvtTimer, 0x31).ok());
    CHECK(s.raise_local(Lvt::Timer) == AcceptOutcome::Accepted);
    CHECK(s.irr().test(0x31));
    REQUIRE(s.write_mmio(kApicOffsetLvtLint1, kLvtDeliveryNmi << kLvtDeliveryModeShift).ok());
    CHECK(s.raise_local(Lvt::Lint1) == AcceptOutcome::NmiLatched);
    REQUIRE(s.write_mmio(kApicOffsetLvtLint0, kLvtDeliveryExtInt << kLvtDeliveryModeShift).ok());
    CHECK(s.raise_local(Lvt::Lint0) == AcceptOutcome::Ignored);
}

TEST_CASE("INIT resets the registers but keeps the ID and the mode", "[apic-state][mode]") {
    ApicState s(0x77);
    software_enable(s);
    REQUIRE(s.write_mmio(kApicOffsetId, 0x09000000).ok());
    s.set_tpr(0x20);
    REQUIRE(s.accept(fixed(0x40)) == AcceptOutcome::Accepted);
    s.init_reset();
    CHECK(s.apic_id() == 0x09);
    CHECK(s.mode() == ApicMode::XApic);
    CHECK(s.tpr() == 0);
    CHECK_FALSE(s.irr().any());
    CHECK_FALSE(s.software_enabled());
    ApicState x = state_in(ApicMode::X2Apic);
    x.init_reset();
    CHECK(x.mode() == ApicMode::X2Apic);
    CHECK(x.apic_id() == 0x21);
}

TEST_CASE("MMIO is not decoded outside xAPIC mode", "[apic-state][mmio]") {
    ApicState x = state_in(ApicMode::X2Apic);
    CHECK(x.read_mmio(kApicOffsetTpr).status == AccessStatus::NotClaimed);
    CHECK(x.write_mmio(kApicOffsetTpr, 0x20).status == AccessStatus::NotClaimed);
    CHECK(x.tpr() == 0);
    ApicState d = state_in(ApicMode::Disabled);
    CHECK(d.write_mmio(kApicOffsetIcrLo, 0x4030).status == AccessStatus::NotClaimed);
}

TEST_CASE("IRR/ISR bit vectors: highest and any follow every set and clear", "[apic][bits]") {
    // VectorBits keeps a summary of its non-zero words; check it against a plain scan over
    // a seeded sequence that empties and refills words, across all eight.
    VectorBits bits;
    std::vector<bool> ref(256, false);
    std::uint32_t x = 12345;
    for (int step = 0; step < 20000; ++step) {
        x = x * 1103515245u + 12345u;
        const auto v = static_cast<std::uint8_t>((x >> 8) % 256);
        // Few vectors per word are live at a time, so words empty often.
        const bool set = (x >> 24) % 3 == 0;
        if (set) {
            bits.set(v);
            ref[v] = true;
        } else {
            bits.clear(v);
            ref[v] = false;
        }
        int highest = -1;
        for (int i = 255; i >= 0; --i)
            if (ref[i]) {
                highest = i;
                break;
            }
        REQUIRE(bits.any() == (highest >= 0));
        if (highest >= 0) {
            REQUIRE(bits.highest().has_value());
            REQUIRE(*bits.highest() == highest);
        } else {
            REQUIRE_FALSE(bits.highest().has_value());
        }
        REQUIRE(bits.test(v) == set);
    }
    bits.set(0x31);
    bits.reset();
    REQUIRE_FALSE(bits.any());
    REQUIRE_FALSE(bits.highest().has_value());
}
