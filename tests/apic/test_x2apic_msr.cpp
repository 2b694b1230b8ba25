// x2APIC MSR interface: which RDMSR/WRMSR succeed and which raise #GP (SDM 11.12.1.2,
// Table 11-6; 11.12.1.3 reserved-bit checking).
#include <catch2/catch.hpp>

#include <vector>

#include "apic/apic_state.hpp"

using namespace vtx::apic;

namespace {
ApicState x2apic_state() {
    ApicState s(0x21);
    REQUIRE(s.write_apic_base(kApicDefaultBaseAddress | kApicBaseGlobalEnable | kApicBaseX2ApicEnable).ok());
    REQUIRE(s.write_msr(kX2ApicMsrSvr, kSvrApicSoftwareEnable | 0xFF).ok());
    return s;
}

enum class Op { Read, Write };
struct Row {
    const char* what;
    std::uint32_t msr;
    Op op;
    std::uint64_t value;
    bool gp;
};
}  // namespace

TEST_CASE("x2APIC RDMSR and WRMSR fault exactly where the SDM says", "[x2apic][gp]") {
    const std::vector<Row> rows = {
        {"read ID", 0x802, Op::Read, 0, false},
        {"write ID (read-only)", 0x802, Op::Write, 0x21, true},
        {"read version", 0x803, Op::Read, 0, false},
        {"write version (read-only)", 0x803, Op::Write, 0, true},
        {"read TPR", 0x808, Op::Read, 0, false},
        {"write TPR", 0x808, Op::Write, 0x20, false},
        {"write TPR reserved bit 8", 0x808, Op::Write, 0x120, true},
        {"write TPR bits 63:32", 0x808, Op::Write, 1ull << 32, true},
        {"read APR (no MSR 809H)", 0x809, Op::Read, 0, true},
        {"read PPR", 0x80A, Op::Read, 0, false},
        {"write PPR (read-only)", 0x80A, Op::Write, 0, true},
        {"read EOI (write-only)", 0x80B, Op::Read, 0, true},
        {"write EOI zero", 0x80B, Op::Write, 0, false},
        {"write EOI non-zero", 0x80B, Op::Write, 1, true},
        {"read RRD (no MSR 80CH)", 0x80C, Op::Read, 0, true},
        {"read LDR", 0x80D, Op::Read, 0, false},
        {"write LDR (read-only)", 0x80D, Op::Write, 0x10001, true},
        {"read DFR (no MSR 80EH)", 0x80E, Op::Read, 0, true},
        {"write DFR (no MSR 80EH)", 0x80E, Op::Write, 0xFFFFFFFF, true},
        {"write SVR", 0x80F, Op::Write, 0x11FF, false},
        {"write SVR focus bit", 0x80F, Op::Write, 0x3FF, false},
        {"write SVR reserved bit 10", 0x80F, Op::Write, 0x5FF, true},
        {"write SVR reserved bit 13", 0x80F, Op::Write, 0x21FF, true},
        {"read ISR0", 0x810, Op::Read, 0, false},
        {"read ISR7", 0x817, Op::Read, 0, false},
        {"write ISR (read-only)", 0x811, Op::Write, 0, true},
        {"read TMR3", 0x81B, Op::Read, 0, false},
        {"write TMR (read-only)", 0x818, Op::Write, 0, true},
        {"read IRR7", 0x827, Op::Read, 0, false},
        {"write IRR (read-only)", 0x820, Op::Write, 0, true},
        {"read ESR", 0x828, Op::Read, 0, false},
        {"write ESR zero", 0x828, Op::Write, 0, false},
        {"write ESR non-zero", 0x828, Op::Write, 0x80, true},
        {"read 829H (reserved)", 0x829, Op::Read, 0, true},
        {"write LVT CMCI", 0x82F, Op::Write, 0x10000 | 0x400, false},
        {"write LVT CMCI reserved bit 13", 0x82F, Op::Write, 0x2000, true},
        {"read ICR", 0x830, Op::Read, 0, false},
        {"write ICR", 0x830, Op::Write, 0x0000000100004031ull, false},
        {"write ICR bit 12 (ignored)", 0x830, Op::Write, 0x0000000100005031ull, false},
        {"write ICR reserved bit 13", 0x830, Op::Write, 0x0000000100006031ull, true},
        {"write ICR reserved bit 16", 0x830, Op::Write, 0x0000000100014031ull, true},
        {"write ICR reserved bit 17", 0x830, Op::Write, 0x0000000100024031ull, true},
        {"write ICR reserved bit 20", 0x830, Op::Write, 0x0000000100104031ull, true},
        {"write ICR reserved bit 31", 0x830, Op::Write, 0x0000000180004031ull, true},
        {"read 831H (no ICR high half)", 0x831, Op::Read, 0, true},
        {"write 831H (no ICR high half)", 0x831, Op::Write, 0, true},
        {"write LVT timer periodic", 0x832, Op::Write, 0x20030, false},
        {"write LVT timer TSC-deadline (unsupported)", 0x832, Op::Write, 0x40030, true},
        {"write LVT timer delivery status (read-only, ignored)", 0x832, Op::Write, 0x1030, false},
        {"write LVT thermal", 0x833, Op::Write, 0x10000, false},
        {"write LVT perf NMI", 0x834, Op::Write, 0x400, false},
        {"write LVT LINT0 level", 0x835, Op::Write, 0x8700, false},
        {"write LVT LINT1", 0x836, Op::Write, 0x400, false},
        {"write LVT error", 0x837, Op::Write, 0xFE, false},
        {"write LVT error delivery mode (reserved)", 0x837, Op::Write, 0x4FE, true},
        {"write timer initial count", 0x838, Op::Write, 0xFFFFFFFF, false},
        {"read timer current count", 0x839, Op::Read, 0, false},
        {"write timer current count (read-only)", 0x839, Op::Write, 0, true},
        {"write divide configuration", 0x83E, Op::Write, 0xB, false},
        {"write divide configuration reserved bit 2", 0x83E, Op::Write, 0x4, true},
        {"read SELF IPI (write-only)", 0x83F, Op::Read, 0, true},
        {"write SELF IPI", 0x83F, Op::Write, 0x40, false},
        {"write SELF IPI reserved bit 8", 0x83F, Op::Write, 0x140, true},
        {"read 800H (reserved)", 0x800, Op::Read, 0, true},
        {"read 801H (reserved)", 0x801, Op::Read, 0, true},
        {"read 840H (reserved)", 0x840, Op::Read, 0, true},
        {"read 8FFH (reserved)", 0x8FF, Op::Read, 0, true},
        {"write BFFH (reserved)", 0xBFF, Op::Write, 0, true},
        {"read a non-APIC MSR", 0x10, Op::Read, 0, true},
    };
    for (const Row& row : rows) {
        INFO(row.what << " (MSR 0x" << std::hex << row.msr << ")");
        ApicState s = x2apic_state();
        if (row.op == Op::Read) {
            const ReadResult r = s.read_msr(row.msr);
            CHECK((r.status == AccessStatus::GeneralProtection) == row.gp);
        } else {
            const WriteResult w = s.write_msr(row.msr, row.value);
            CHECK((w.status == AccessStatus::GeneralProtection) == row.gp);
            if (row.gp) {
                CHECK_FALSE(w.send_icr);
                CHECK_FALSE(w.self_ipi);
                CHECK_FALSE(w.eoi);
            }
        }
    }
}

TEST_CASE("x2APIC MSRs fault outside x2APIC mode", "[x2apic][gp]") {
    ApicState s(1);  // xAPIC
    CHECK(s.read_msr(kX2ApicMsrId).status == AccessStatus::GeneralProtection);
    CHECK(s.write_msr(kX2ApicMsrIcr, 0x4031).status == AccessStatus::GeneralProtection);
    CHECK(s.read_msr(kMsrIa32ApicBase).ok());
    REQUIRE(s.write_apic_base(kApicDefaultBaseAddress).ok());  // disabled
    CHECK(s.read_msr(kX2ApicMsrTpr).status == AccessStatus::GeneralProtection);
}

TEST_CASE("x2APIC register values: ID, version, LDR, 64-bit ICR, self IPI", "[x2apic]") {
    ApicState s = x2apic_state();
    CHECK(s.read_msr(kX2ApicMsrId).value == 0x21);
    CHECK(s.read_msr(kX2ApicMsrVersion).value == kApicVersionValue);
    CHECK(s.read_msr(kX2ApicMsrLdr).value == 0x00020002u);
    CHECK(s.read_msr(kX2ApicMsrSvr).value == (kSvrApicSoftwareEnable | 0xFF));
    WriteResult w = s.write_msr(kX2ApicMsrIcr, 0x1234567800005031ull);
    REQUIRE(w.send_icr);
    CHECK(*w.send_icr == 0x1234567800004031ull);  // bit 12 ignored
    CHECK(s.read_msr(kX2ApicMsrIcr).value == 0x1234567800004031ull);
    w = s.write_msr(kX2ApicMsrSelfIpi, 0x44);
    REQUIRE(w.self_ipi);
    CHECK(*w.self_ipi == 0x44);
    CHECK_FALSE(w.send_icr);
    REQUIRE(s.write_msr(kX2ApicMsrTpr, 0x30).ok());
    CHECK(s.read_msr(kX2ApicMsrTpr).value == 0x30);
    CHECK(s.read_msr(kX2ApicMsrPpr).value == 0x30);
}

TEST_CASE("x2APIC EOI and IRR/ISR through MSRs", "[x2apic]") {
    ApicState s = x2apic_state();
    InterruptMessage m;
    m.vector = 0x41;
    REQUIRE(s.accept(m) == AcceptOutcome::Accepted);
    CHECK(s.read_msr(kX2ApicMsrIrr0 + 2).value == 0x2u);  // vector 65: IRR2 bit 1
    REQUIRE(s.acknowledge() == 0x41);
    CHECK(s.read_msr(kX2ApicMsrIsr0 + 2).value == 0x2u);
    CHECK(s.read_msr(kX2ApicMsrIrr0 + 2).value == 0x0u);
    CHECK(s.write_msr(kX2ApicMsrEoi, 1).status == AccessStatus::GeneralProtection);
    CHECK(s.isr().test(0x41));  // the faulting write did nothing
    const WriteResult w = s.write_msr(kX2ApicMsrEoi, 0);
    REQUIRE(w.eoi);
    CHECK(w.eoi->vector == 0x41);
    CHECK_FALSE(s.isr().any());
}
