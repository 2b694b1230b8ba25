// NMIs in VMX non-root operation (SDM 26.2, 24.4.2, 27.6.1.2; SDM 6.7): with "NMI exiting" an
// NMI is a VM exit with basic reason 0 and NMI interruption information; without it the guest
// takes it through its IDT (vector 2) with NMI blocking until IRET. The NMIs come from another
// processor's physical APIC. Named after kvm-unit-tests' vmx nmi tests.
#include <catch2/catch.hpp>

#include <vector>

#include "cpu/harness.hpp"

using namespace vtx::cpu;
using namespace vtx::cpu::test;
namespace vmcs = vtx::vmcs;

namespace {
void send_nmi(LogicalProcessor& p, std::uint32_t dest) { p.host_send_ipi(dest, 0, kIcrNmi); }
}  // namespace

TEST_CASE("vmx nmi: with NMI exiting an NMI causes VM exit 0 with NMI interruption information", "[cpu][nmi]") {
    Harness h("spr", 2);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.controls.pin |= vmcs::kPinNmiExiting | vmcs::kPinVirtualNmis;
    v.passthrough_x2apic_msrs(false);
    bool ready = false;
    std::uint64_t guest_nmis = 0;
    v.handler(vmcs::kVectorNmi, [&](GuestCpu&, std::uint8_t) { ++guest_nmis; });
    v.on_exit = [](TestVcpu&, LogicalProcessor&, const ExitRecord&) { return false; };
    v.program([&](GuestCpu& g) {
        ready = true;
        g.spin_until([] { return false; });
    });
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return ready; });
        send_nmi(p, h.cpu(0).apic().apic_id());
    });
    REQUIRE(h.run() == "");
    REQUIRE(v.exits.size() == 1);
    const ExitRecord& e = v.exits[0];
    CHECK(e.reason == reason(vmcs::ExitReason::ExceptionOrNmi));
    CHECK(vmcs::interruption_valid(e.intr_info));
    CHECK(vmcs::interruption_type(e.intr_info) == vmcs::InterruptionType::Nmi);
    CHECK(vmcs::interruption_vector(e.intr_info) == vmcs::kVectorNmi);
    CHECK(guest_nmis == 0);
    CHECK_FALSE(h.cpu(0).apic().nmi_pending());
}

TEST_CASE("vmx nmi: without NMI exiting the guest takes NMIs through its IDT, one at a time", "[cpu][nmi]") {
    // The second NMI arrives while the handler of the first runs: NMI blocking holds it
    // until the handler's IRET.
    Harness h("spr", 2);
    TestVcpu& v = h.add_vcpu(0);
    v.controls = Controls::apicv_x2apic();
    v.passthrough_x2apic_msrs(false);
    bool ready = false, first_entered = false;
    std::vector<std::pair<double, double>> handled;  // entry, just before IRET
    std::uint64_t blocking_in_handler = 0;
    v.handler(vmcs::kVectorNmi, [&](GuestCpu& g, std::uint8_t) {
        const double at = g.cpu().now_cycles();
        first_entered = true;
        blocking_in_handler |= v.ctx.vmcs.hw_read(vmcs::Field::GuestInterruptibilityInfo) & vmcs::kBlockingByNmi;
        g.compute(20000);
        handled.emplace_back(at, g.cpu().now_cycles());
    });
    v.program([&](GuestCpu& g) {
        ready = true;
        g.spin_until([&] { return handled.size() == 2; });
    });
    h.software(1, [&](LogicalProcessor& p) {
        wait_until(p, [&] { return ready; });
        send_nmi(p, h.cpu(0).apic().apic_id());
        wait_until(p, [&] { return first_entered; });
        send_nmi(p, h.cpu(0).apic().apic_id());
    });
    REQUIRE(h.run() == "");
    CHECK(v.exits.empty());
    REQUIRE(handled.size() == 2);
    CHECK(blocking_in_handler != 0);
    CHECK(handled[1].first > handled[0].second);  // not nested: after the first IRET
    CHECK((v.ctx.vmcs.hw_read(vmcs::Field::GuestInterruptibilityInfo) & vmcs::kBlockingByNmi) == 0);
}
