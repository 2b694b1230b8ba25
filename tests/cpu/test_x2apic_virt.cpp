// x2APIC MSR virtualization (SDM16 25.1.3, 29.5; reference vtx-semantics.md 4.4), as
// kvm-unit-tests virt_x2apic_mode_test: RDMSR/WRMSR of 800H-8FFH under "virtualize x2APIC
// mode", with and without MSR-bitmap interception, APIC-register virtualization and VID.
#include <catch2/catch.hpp>

#include <sstream>
#include <vector>

#include "cpu/harness.hpp"

using namespace vtx::cpu;
using namespace vtx::cpu::test;
namespace vmcs = vtx::vmcs;

namespace {

struct Setting {
    const char* name;
    bool intercept_all;  // MSR bitmap: every x2APIC MSR intercepted
    bool reg_virt, vid;
};
const Setting kSettings[] = {
    {"MSR bitmap intercepts everything", true, false, false},
    {"TPR shadow only, KVM bitmap", false, false, false},
    {"APIC-register virtualization + VID, KVM bitmap", false, true, true},
    {"VID without APIC-register virtualization, KVM bitmap", false, false, true},
};

Controls controls_for(const Setting& s) {
    Controls c;
    c.pin |= vmcs::kPinExternalInterruptExiting;
    c.primary |= vmcs::kPrimaryActivateSecondaryControls | vmcs::kPrimaryUseMsrBitmaps |
                 vmcs::kPrimaryUseTprShadow;
    c.secondary = vmcs::kSecondaryVirtualizeX2apicMode;
    if (s.reg_virt) c.secondary |= vmcs::kSecondaryApicRegisterVirtualization;
    if (s.vid) c.secondary |= vmcs::kSecondaryVirtualInterruptDelivery;
    return c;
}

enum class Access { Read, Write };
enum class Outcome {
    FromPage,      // RDMSR: 8 bytes of the virtual-APIC page at (ECX & FFH) << 4, no exit
    FromPhysical,  // RDMSR: the physical x2APIC register ("operates normally"), no exit
    Virtualized,   // WRMSR: virtualized, no exit; `page_after` at the register's offset
    MsrExit,       // exit 31 / 32, fault-like
    ApicWrite,     // exit 56, trap-like, qualification `qualification`
    Gp,            // #GP(0) delivered to the guest, no exit
};

struct Row {
    int setting;
    Access access;
    std::uint32_t msr;
    std::uint64_t value;
    Outcome outcome;
    std::uint64_t expect = 0;  // Virtualized: page value after; ApicWrite: qualification
};

using A = Access;
using O = Outcome;
// clang-format off
const Row kRows[] = {
    {0, A::Read,  kMsrTpr, 0, O::MsrExit},
    {0, A::Write, kMsrTpr, 0x30, O::MsrExit},
    {0, A::Read,  kMsrId, 0, O::MsrExit},
    {0, A::Write, kMsrSelfIpi, 0x50, O::MsrExit},
    {0, A::Write, kMsrEoi, 0, O::MsrExit},
    {1, A::Write, kMsrTpr, 0x40, O::Virtualized, 0x40},
    {1, A::Read,  kMsrTpr, 0, O::FromPage},
    {1, A::Read,  kMsrVersion, 0, O::FromPhysical},          // without APIC-register virtualization
    {1, A::Write, kMsrTpr, 0x140, O::Gp},                    // EAX[31:8] != 0
    {1, A::Write, kMsrTpr, std::uint64_t{1} << 32, O::Gp},   // EDX != 0
    {1, A::Write, kMsrLdr, 0x1, O::MsrExit},                 // write intercepted by the bitmap
    {2, A::Read,  kMsrVersion, 0, O::FromPage},
    {2, A::Read,  kMsrLdr, 0, O::FromPage},
    {2, A::Read,  kMsrIcr, 0, O::FromPage},                  // 64 bits at 300H
    {2, A::Read,  kMsrIsr0 + 1, 0, O::FromPage},
    {2, A::Write, kMsrTpr, 0x60, O::Virtualized, 0x60},      // then VPPR = 0x60 (checked below)
    {2, A::Read,  kMsrPpr, 0, O::FromPage},
    {2, A::Write, kMsrTpr, 0x0, O::Virtualized, 0x0},
    {2, A::Write, kMsrEoi, 0, O::Virtualized, 0},            // EOI virtualization, no exit
    {2, A::Write, kMsrEoi, 1, O::Gp},
    {2, A::Write, kMsrSelfIpi, 0x50, O::Virtualized, 0x50},  // self-IPI virtualization
    {2, A::Write, kMsrSelfIpi, 0x05, O::ApicWrite, 0x3F0},   // vector < 16
    {2, A::Write, kMsrSelfIpi, 0x150, O::Gp},
    {2, A::Write, kMsrIcr, 0x45, O::MsrExit},                // intercepted (no IPIv)
    {3, A::Read,  kMsrVersion, 0, O::FromPhysical},
    {3, A::Read,  kMsrTpr, 0, O::FromPage},
    {3, A::Write, kMsrSelfIpi, 0x61, O::Virtualized, 0x61},
};
// clang-format on
constexpr std::size_t kRowCount = sizeof kRows / sizeof kRows[0];

std::uint64_t emulated(std::uint32_t msr) { return 0xE0000000u | msr; }

struct RowResult {
    bool done = false;
    std::uint64_t rip_before = 0, rip_after = 0, value_read = 0, page_before = 0, page_after = 0;
    unsigned gps = 0;
    std::vector<ExitRecord> exits;
    std::vector<std::uint64_t> page_at_exit;
};

std::uint32_t offset_of(std::uint32_t msr) { return (msr & 0xFF) << 4; }

std::string describe(std::size_t i) {
    const Row& r = kRows[i];
    std::ostringstream os;
    os << "row " << i << ": " << kSettings[r.setting].name << ", " << (r.access == Access::Read ? "RDMSR" : "WRMSR")
       << " 0x" << std::hex << r.msr << " value 0x" << r.value;
    return os.str();
}

}  // namespace

TEST_CASE("virt_x2apic_mode_test: x2APIC MSR accesses by MSR, bitmap and control setting", "[cpu][x2apic]") {
    Harness h("spr", 1);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = controls_for(kSettings[0]);
    v.rflags = kRflagsFixed;  // IF = 0 until the end
    for (std::uint32_t off : {0x030u, 0x034u, 0x0D0u, 0x300u, 0x304u, 0x110u})
        v.page().write32(off, 0xA5000000u | off);

    std::vector<RowResult> results(kRowCount);
    int current_row = -1;
    v.on_exit = [&](TestVcpu& t, LogicalProcessor& p, const ExitRecord& e) {
        if (e.reason == reason(ExitReason::Vmcall)) {
            const Setting& s = kSettings[t.ctx.regs.rax];
            const Controls c = controls_for(s);
            p.vmwrite(Field::SecondaryVmExecControl, c.secondary);
            if (s.intercept_all)
                for (std::uint32_t msr = 0x800; msr <= 0x8FF; ++msr) t.set_msr_intercept(msr, true, true);
            else
                t.passthrough_x2apic_msrs(false);
            t.skip(p);
            return true;
        }
        if (current_row < 0) return false;
        RowResult& r = results[static_cast<std::size_t>(current_row)];
        r.exits.push_back(e);
        r.page_at_exit.push_back(t.vapic64(static_cast<std::uint32_t>(e.qualification & 0xFF0)));
        if (e.reason == reason(ExitReason::Rdmsr)) {
            const std::uint64_t val = emulated(static_cast<std::uint32_t>(t.ctx.regs.rcx));
            t.ctx.regs.rax = val & 0xFFFFFFFFu;
            t.ctx.regs.rdx = val >> 32;
            t.skip(p);
        } else if (e.reason == reason(ExitReason::Wrmsr)) {
            t.skip(p);
        }
        return true;
    };
    v.handler(vmcs::kVectorGeneralProtection, [&](GuestCpu& g, std::uint8_t) {
        if (current_row >= 0) ++results[static_cast<std::size_t>(current_row)].gps;
        g.context().return_rip += kLenWrmsr;  // exception fixup: skip the faulting WRMSR
    });
    std::vector<std::uint8_t> delivered;
    for (std::uint8_t vec : {0x50, 0x61})
        v.handler(vec, [&](GuestCpu& g, std::uint8_t got) {
            delivered.push_back(got);
            g.wrmsr(kMsrEoi, 0);
        });
    std::uint32_t vppr_after_tpr60 = 0;
    v.program([&](GuestCpu& g) {
        int setting = 0;
        for (std::size_t i = 0; i < kRowCount; ++i) {
            const Row& row = kRows[i];
            if (row.setting != setting) {
                current_row = -1;
                g.vmcall(static_cast<std::uint64_t>(row.setting));
                setting = row.setting;
            }
            RowResult& r = results[i];
            current_row = static_cast<int>(i);
            r.page_before = v.vapic64(offset_of(row.msr));
            r.rip_before = v.guest_rip();
            if (row.access == Access::Read)
                r.value_read = g.rdmsr(row.msr);
            else
                g.wrmsr(row.msr, row.value);
            r.rip_after = v.guest_rip();
            r.page_after = v.vapic64(offset_of(row.msr));
            if (row.msr == kMsrTpr && row.value == 0x60) vppr_after_tpr60 = v.vapic32(kVapicPpr);
            r.done = true;
        }
        current_row = -1;
        g.sti();  // the virtualized self-IPIs are delivered now
        g.compute(1);
        g.compute(1);
    });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::GuestFinished);
    const std::uint64_t physical_version = h.cpu(0).apic().rdmsr(kMsrVersion).value;

    for (std::size_t i = 0; i < kRowCount; ++i) {
        const Row& row = kRows[i];
        const RowResult& r = results[i];
        INFO(describe(i));
        REQUIRE(r.done);
        const unsigned len = row.access == Access::Read ? kLenRdmsr : kLenWrmsr;
        CHECK(r.rip_after == r.rip_before + len);  // completed exactly once
        switch (row.outcome) {
            case Outcome::FromPage:
                CHECK(r.exits.empty());
                CHECK(r.value_read == r.page_before);
                break;
            case Outcome::FromPhysical:
                CHECK(r.exits.empty());
                CHECK(r.value_read == physical_version);
                CHECK(r.value_read != r.page_before);
                break;
            case Outcome::Virtualized:
                CHECK(r.exits.empty());
                CHECK(r.gps == 0);
                CHECK(r.page_after == row.expect);
                break;
            case Outcome::MsrExit: {
                REQUIRE(r.exits.size() == 1);
                const ExitRecord& e = r.exits[0];
                CHECK(e.reason == reason(row.access == Access::Read ? ExitReason::Rdmsr : ExitReason::Wrmsr));
                CHECK(e.guest_rip == r.rip_before);  // fault-like
                CHECK(e.instruction_length == len);
                CHECK(e.qualification == 0);
                if (row.access == Access::Read) CHECK(r.value_read == emulated(row.msr));
                CHECK(r.page_after == r.page_before);
                break;
            }
            case Outcome::ApicWrite: {
                REQUIRE(r.exits.size() == 1);
                const ExitRecord& e = r.exits[0];
                CHECK(e.reason == reason(ExitReason::ApicWrite));
                CHECK(e.qualification == row.expect);
                CHECK(e.guest_rip == r.rip_before + len);  // trap-like
                CHECK(r.page_at_exit[0] == row.value);     // the value is at 3F0H
                break;
            }
            case Outcome::Gp:
                CHECK(r.exits.empty());
                CHECK(r.gps == 1);
                CHECK(r.page_after == r.page_before);  // nothing written
                break;
        }
    }
    CHECK(vppr_after_tpr60 == 0x60);  // TPR virtualization with VID: PPR virtualization
    // Self-IPI virtualization set VIRR and RVI; delivery waited for IF = 1.
    CHECK(delivered == std::vector<std::uint8_t>{0x61, 0x50});
    CHECK(v.rvi() == 0);
    CHECK_FALSE(v.virr(0x50));
    CHECK_FALSE(v.virr(0x05));
}
