// APIC-access page virtualization (SDM16 29.4.2-29.4.3; reference vtx-semantics.md 4.1-4.3),
// table-driven over offsets and control settings, as kvm-unit-tests apic_reg_virt_test.
// One guest walks the table; before each row whose control setting differs from the
// previous one it asks the test VMM (VMCALL) to VMWRITE that setting.
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
    bool tpr_shadow, reg_virt, vid, ipiv;
};
// The control settings, indexed by Row::setting. "Virtualize APIC accesses" is 1 in all.
const Setting kSettings[] = {
    {"virtualize APIC accesses only", false, false, false, false},
    {"TPR shadow", true, false, false, false},
    {"TPR shadow + VID", true, false, true, false},
    {"TPR shadow + APIC-register virtualization", true, true, false, false},
    {"TPR shadow + APIC-register virtualization + VID", true, true, true, false},
    {"TPR shadow + IPIv", true, false, false, true},
};

Controls controls_for(const Setting& s) {
    Controls c;
    c.pin |= vmcs::kPinExternalInterruptExiting;
    c.primary |= vmcs::kPrimaryActivateSecondaryControls | vmcs::kPrimaryUseMsrBitmaps;
    if (s.tpr_shadow) c.primary |= vmcs::kPrimaryUseTprShadow;
    c.secondary = vmcs::kSecondaryVirtualizeApicAccesses;
    if (s.reg_virt) c.secondary |= vmcs::kSecondaryApicRegisterVirtualization;
    if (s.vid) c.secondary |= vmcs::kSecondaryVirtualInterruptDelivery;
    if (s.ipiv) c.with_ipiv();
    return c;
}

enum class Access { Read, Write };
enum class Outcome {
    Virtualized,  // no exit; reads come from the virtual-APIC page, writes land there
    ApicAccess,   // exit 44, fault-like, qualification offset | type << 12
    ApicWrite,    // exit 56, trap-like, qualification offset, data already on the page
};

struct Row {
    int setting;
    Access access;
    std::uint32_t offset;
    std::uint32_t value;  // written (writes)
    Outcome outcome;
    std::uint32_t page_after;  // virtualized writes: the virtual-APIC register afterwards
};

constexpr std::uint32_t kSelfIpi50 = kIcrShorthandSelf | 0x50;  // qualifies for self-IPI virtualization
constexpr std::uint32_t kFixed45 = 0x45;                        // a fixed, physical IPI: not a self-IPI
constexpr std::uint32_t kNmiIpi = kIcrNmi;                      // never IPI-virtualized

using A = Access;
using O = Outcome;
// clang-format off
const Row kRows[] = {
    // "use TPR shadow" = 0: every access exits.
    {0, A::Write, 0x080, 0x10, O::ApicAccess, 0},
    {0, A::Read,  0x080, 0, O::ApicAccess, 0},
    {0, A::Write, 0x0B0, 0, O::ApicAccess, 0},
    {0, A::Read,  0x020, 0, O::ApicAccess, 0},
    // TPR shadow: only the TPR is virtualized.
    {1, A::Write, 0x080, 0xFFFFFF35, O::Virtualized, 0x35},  // bytes 3:1 cleared
    {1, A::Read,  0x080, 0, O::Virtualized, 0},
    {1, A::Write, 0x0B0, 0, O::ApicAccess, 0},
    {1, A::Read,  0x0B0, 0, O::ApicAccess, 0},
    {1, A::Write, 0x300, kFixed45, O::ApicAccess, 0},
    {1, A::Write, 0x310, 0x01000000, O::ApicAccess, 0},
    {1, A::Read,  0x020, 0, O::ApicAccess, 0},
    {1, A::Write, 0x084, 0x11, O::ApicAccess, 0},             // not in the low 4 bytes of a slot
    {1, A::Read,  0x088, 0, O::ApicAccess, 0},
    // TPR shadow + VID: EOI and ICR-low writes too; reads still only the TPR.
    {2, A::Write, 0x0B0, 0x1234, O::Virtualized, 0},          // EOI virtualization clears VEOI
    {2, A::Read,  0x0B0, 0, O::ApicAccess, 0},
    {2, A::Write, 0x300, kSelfIpi50, O::Virtualized, kSelfIpi50},
    {2, A::Write, 0x300, kFixed45, O::ApicWrite, 0},
    {2, A::Read,  0x300, 0, O::ApicAccess, 0},
    {2, A::Write, 0x310, 0x01000000, O::ApicAccess, 0},
    {2, A::Write, 0x0D0, 0x01000000, O::ApicAccess, 0},
    {2, A::Read,  0x080, 0, O::Virtualized, 0},
    // TPR shadow + APIC-register virtualization (no VID).
    {3, A::Write, 0x0B0, 0, O::ApicWrite, 0},                 // EOI without VID: APIC-write exit
    {3, A::Write, 0x300, kSelfIpi50, O::ApicWrite, 0},        // ICR without VID: APIC-write exit
    {3, A::Write, 0x310, 0x12345678, O::Virtualized, 0x12000000},  // bytes 2:0 cleared, no exit
    {3, A::Write, 0x020, 0x05000000, O::ApicWrite, 0},
    {3, A::Write, 0x0D0, 0x01000000, O::ApicWrite, 0},
    {3, A::Write, 0x0E0, 0xFFFFFFFF, O::ApicWrite, 0},
    {3, A::Write, 0x0F0, 0x1FF, O::ApicWrite, 0},
    {3, A::Write, 0x280, 0, O::ApicWrite, 0},
    {3, A::Write, 0x320, 0x10030, O::ApicWrite, 0},
    {3, A::Write, 0x350, 0x700, O::ApicWrite, 0},
    {3, A::Write, 0x370, 0x10031, O::ApicWrite, 0},
    {3, A::Write, 0x380, 1000, O::ApicWrite, 0},
    {3, A::Write, 0x3E0, 0xB, O::ApicWrite, 0},
    {3, A::Write, 0x030, 0x1, O::ApicAccess, 0},              // version: not writable
    {3, A::Write, 0x0A0, 0x1, O::ApicAccess, 0},              // PPR
    {3, A::Write, 0x100, 0x1, O::ApicAccess, 0},              // ISR
    {3, A::Write, 0x200, 0x1, O::ApicAccess, 0},              // IRR
    {3, A::Write, 0x390, 0x1, O::ApicAccess, 0},              // current count
    {3, A::Write, 0x3F0, 0x50, O::ApicAccess, 0},             // SELF IPI is x2APIC only
    {3, A::Read,  0x020, 0, O::Virtualized, 0},
    {3, A::Read,  0x030, 0, O::Virtualized, 0},
    {3, A::Read,  0x0D0, 0, O::Virtualized, 0},
    {3, A::Read,  0x0F0, 0, O::Virtualized, 0},
    {3, A::Read,  0x110, 0, O::Virtualized, 0},               // ISR
    {3, A::Read,  0x180, 0, O::Virtualized, 0},               // TMR
    {3, A::Read,  0x270, 0, O::Virtualized, 0},               // IRR
    {3, A::Read,  0x300, 0, O::Virtualized, 0},
    {3, A::Read,  0x310, 0, O::Virtualized, 0},
    {3, A::Read,  0x360, 0, O::Virtualized, 0},
    {3, A::Read,  0x3E0, 0, O::Virtualized, 0},
    {3, A::Read,  0x0A0, 0, O::ApicAccess, 0},                // PPR: not in the read list
    {3, A::Read,  0x390, 0, O::ApicAccess, 0},                // current count
    {3, A::Read,  0x3F0, 0, O::ApicAccess, 0},
    {3, A::Read,  0x024, 0, O::ApicAccess, 0},                // not in the low 4 bytes
    // APIC-register virtualization + VID.
    {4, A::Write, 0x0B0, 0, O::Virtualized, 0},
    {4, A::Read,  0x0B0, 0, O::Virtualized, 0},
    {4, A::Write, 0x300, kFixed45, O::ApicWrite, 0},
    {4, A::Write, 0x300, kIcrShorthandSelf | 0x0F, O::ApicWrite, 0},  // self-IPI, vector < 16
    {4, A::Write, 0x300, kIcrShorthandSelf | kIcrTriggerLevel | 0x51, O::ApicWrite, 0},
    {4, A::Write, 0x300, kSelfIpi50 + 1, O::Virtualized, kSelfIpi50 + 1},
    {4, A::Write, 0x0D0, 0x02000000, O::ApicWrite, 0},
    // IPIv alone makes ICR-low writes virtualized (IPI virtualization or APIC-write exit).
    {5, A::Write, 0x300, kNmiIpi, O::ApicWrite, 0},
    {5, A::Read,  0x300, 0, O::ApicAccess, 0},
    {5, A::Write, 0x310, 0x01000000, O::ApicAccess, 0},
    {5, A::Write, 0x0B0, 0, O::ApicAccess, 0},
    {5, A::Write, 0x080, 0x20, O::Virtualized, 0x20},
};
// clang-format on
constexpr std::size_t kRowCount = sizeof kRows / sizeof kRows[0];

std::uint32_t emulated_read_value(std::uint32_t offset) { return 0xE0000000u | offset; }
std::uint32_t prefill(std::uint32_t offset) { return 0xA5000000u | offset; }

struct RowResult {
    bool done = false;
    std::uint64_t rip_before = 0, rip_after = 0;
    std::uint32_t value_read = 0;
    std::uint32_t page_before = 0, page_after = 0;
    std::vector<ExitRecord> exits;
    std::vector<std::uint32_t> page_at_exit;  // the register at the exit's offset, at the exit
};

std::string describe(std::size_t i) {
    const Row& r = kRows[i];
    std::ostringstream os;
    os << "row " << i << ": " << kSettings[r.setting].name << ", " << (r.access == Access::Read ? "read" : "write")
       << " offset 0x" << std::hex << r.offset;
    return os.str();
}

}  // namespace

TEST_CASE("apic_reg_virt_test: APIC-access page reads and writes by offset and control setting",
          "[cpu][apicv]") {
    Harness h("spr", 2);
    TestVcpu& v = h.add_vcpu(0);
    // IPIv needs a PID-pointer table even when no IPI is virtualized.
    v.pid_table = h.make_pid_table(1);
    v.last_pid_index = 0;
    v.controls = controls_for(kSettings[kRows[0].setting]);
    v.rflags = kRflagsFixed;  // IF = 0: self-IPIs stay requested, nothing is delivered
    // Distinctive register values on the virtual-APIC page (not in ISR/IRR/PPR/TPR).
    for (std::uint32_t off : {0x020u, 0x030u, 0x0D0u, 0x0E0u, 0x0F0u, 0x180u, 0x280u, 0x300u, 0x310u,
                              0x320u, 0x360u, 0x380u, 0x3E0u, 0x390u, 0x3F0u})
        v.page().write32(off, prefill(off));

    std::vector<RowResult> results(kRowCount);
    int current_row = -1;
    v.on_exit = [&](TestVcpu& t, LogicalProcessor& p, const ExitRecord& e) {
        if (e.reason == reason(ExitReason::Vmcall)) {
            // Switch to the control setting in RAX.
            const Controls c = controls_for(kSettings[t.ctx.regs.rax]);
            p.vmwrite(Field::PinBasedVmExecControl, c.pin);
            p.vmwrite(Field::CpuBasedVmExecControl, c.primary);
            p.vmwrite(Field::SecondaryVmExecControl, c.secondary);
            p.vmwrite(Field::TertiaryVmExecControl, c.tertiary);
            t.skip(p);
            return true;
        }
        if (current_row < 0) return false;
        RowResult& r = results[static_cast<std::size_t>(current_row)];
        r.exits.push_back(e);
        r.page_at_exit.push_back(t.vapic32(static_cast<std::uint32_t>(e.qualification & 0xFF0)));
        if (e.reason == reason(ExitReason::ApicAccess)) {
            // Emulate: a read returns a value the virtual-APIC page does not hold; a write
            // is dropped (the test only checks that it did not land on the page).
            if (!t.ctx.mmio.write) t.ctx.mmio.value = emulated_read_value(kRows[current_row].offset);
            t.skip(p);
        }
        return true;  // APIC-write exits are trap-like: RIP is already past the write
    };
    v.program([&](GuestCpu& g) {
        int setting = kRows[0].setting;
        for (std::size_t i = 0; i < kRowCount; ++i) {
            const Row& row = kRows[i];
            if (row.setting != setting) {
                current_row = -1;
                g.vmcall(static_cast<std::uint64_t>(row.setting));
                setting = row.setting;
            }
            RowResult& r = results[i];
            current_row = static_cast<int>(i);
            r.page_before = v.vapic32(row.offset & ~3u);
            r.rip_before = v.guest_rip();
            if (row.access == Access::Read)
                r.value_read = g.mmio_read32(kGuestApicBase + row.offset);
            else
                g.mmio_write32(kGuestApicBase + row.offset, row.value);
            r.rip_after = v.guest_rip();
            r.page_after = v.vapic32(row.offset & ~3u);
            r.done = true;
        }
        current_row = -1;
    });
    REQUIRE(h.run() == "");
    CHECK(v.vmx_errors.empty());
    REQUIRE(v.end);
    CHECK(v.end->outcome == EntryOutcome::GuestFinished);

    for (std::size_t i = 0; i < kRowCount; ++i) {
        const Row& row = kRows[i];
        const RowResult& r = results[i];
        INFO(describe(i));
        REQUIRE(r.done);
        CHECK(r.rip_after == r.rip_before + kLenMovMmio);  // the instruction completed once
        switch (row.outcome) {
            case Outcome::Virtualized:
                CHECK(r.exits.empty());
                if (row.access == Access::Read)
                    CHECK(r.value_read == r.page_before);
                else
                    CHECK(r.page_after == row.page_after);
                break;
            case Outcome::ApicAccess: {
                REQUIRE(r.exits.size() == 1);
                const ExitRecord& e = r.exits[0];
                CHECK(e.reason == reason(ExitReason::ApicAccess));
                const std::uint64_t type = row.access == Access::Write ? 1 : 0;  // linear write / read
                CHECK(e.qualification == (row.offset | type << 12));
                CHECK(e.guest_rip == r.rip_before);  // fault-like
                CHECK(e.instruction_length == kLenMovMmio);
                if (row.access == Access::Read)
                    CHECK(r.value_read == emulated_read_value(row.offset));
                else
                    CHECK(r.page_after == r.page_before);  // nothing landed on the page
                break;
            }
            case Outcome::ApicWrite: {
                REQUIRE(r.exits.size() == 1);
                const ExitRecord& e = r.exits[0];
                CHECK(e.reason == reason(ExitReason::ApicWrite));
                CHECK(e.qualification == row.offset);
                CHECK(e.guest_rip == r.rip_before + kLenMovMmio);  // trap-like
                CHECK(r.page_at_exit[0] == row.value);              // the data is on the page
                break;
            }
        }
    }
    // The self-IPIs were virtualized: VIRR bits and RVI (IF = 0: not delivered).
    CHECK(v.virr(0x50));
    CHECK(v.virr(0x51));
    CHECK(v.rvi() == 0x51);
    CHECK_FALSE(v.virr(0x45));  // the fixed IPI went to the VMM, not to VIRR
}
