#include "cpu/logical_processor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/guest.hpp"
#include "cpu/platform.hpp"
#include "pid/descriptor.hpp"
#include "pid/pid_table.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/entry_checks.hpp"

namespace vtx::cpu {

using model::Cost;
using vmcs::ActivityState;
using vmcs::ExitReason;
using vmcs::Field;

namespace {
// Architectural constants used by the flows.
constexpr std::uint64_t kRflagsIf = 1u << 9;
constexpr std::uint8_t kFirstValidVector = 16;       // IPIv step 1: V < 16 is illegal
constexpr std::uint32_t kX2apicMsrFirst = 0x800;
constexpr std::uint32_t kX2apicMsrLast = 0x8FF;
constexpr std::uint32_t kMsrX2apicTpr = 0x808;
constexpr std::uint32_t kMsrX2apicEoi = 0x80B;
constexpr std::uint32_t kMsrX2apicIcr = 0x830;
constexpr std::uint32_t kMsrX2apicSelfIpi = 0x83F;
constexpr std::uint32_t kIcrReservedX2apic = 0xFFF00000u | (0x3u << 16) | (1u << 13);
constexpr std::uint32_t kXapicIcrDestShift = 24;     // ICR_HI[31:24]
constexpr unsigned kX2apicIcrDestShift = 32;         // ICR[63:32]
constexpr std::uint32_t kApicSlotMask = 0xF;         // offset within a 16-byte slot
// Instruction lengths the exits report (encodings of the modelled instructions).
constexpr unsigned kLenWrmsr = 2, kLenRdmsr = 2, kLenCpuid = 2, kLenVmcall = 3, kLenHlt = 1,
                   kLenMovMmio = 6, kLenPause = 2, kLenRdtsc = 2, kLenStraightLine = 1;
// MSR-bitmap layout (SDM 24.6.9): read-low, read-high, write-low, write-high, 1 KiB each.
constexpr std::uint64_t kMsrBitmapReadLow = 0, kMsrBitmapReadHigh = 1024,
                        kMsrBitmapWriteLow = 2048, kMsrBitmapWriteHigh = 3072;
constexpr std::uint32_t kMsrLowLast = 0x1FFF;
constexpr std::uint32_t kMsrHighFirst = 0xC0000000, kMsrHighLast = 0xC0001FFF;
constexpr std::uint8_t kVectorGp = 13;

std::uint32_t intr_info_external(std::uint8_t vector) {
    return vector | (static_cast<std::uint32_t>(vmcs::InterruptionType::ExternalInterrupt)
                     << vmcs::kIntrInfoTypeShift) |
           vmcs::kIntrInfoValid;
}

// Offsets of the APIC-access page whose writes are virtualized with APIC-register
// virtualization (SDM16 29.4.3.1, reference 4.1): the low 4 bytes of these slots.
bool apic_reg_virt_write_offset(std::uint32_t off) {
    switch (off & ~kApicSlotMask) {
        case 0x020: case 0x080: case 0x0B0: case 0x0D0: case 0x0E0: case 0x0F0:
        case 0x280: case 0x300: case 0x310: case 0x380: case 0x3E0:
            return true;
        default:
            return (off & ~kApicSlotMask) >= 0x320 && (off & ~kApicSlotMask) <= 0x370;
    }
}
// Reads virtualized with APIC-register virtualization (SDM16 29.4.2).
bool apic_reg_virt_read_offset(std::uint32_t off) {
    const std::uint32_t slot = off & ~kApicSlotMask;
    if (slot >= 0x100 && slot <= 0x270) return true;  // ISR, TMR, IRR
    return apic_reg_virt_write_offset(off) || slot == 0x030;
}
}  // namespace

// ------------------------------------------------------------------------------------
LogicalProcessor::LogicalProcessor(sc_core::sc_module_name name, int index, Platform& platform,
                                   apic::InterruptBus& bus)
    : sc_module(name),
      mem_socket("mem_socket"),
      m_index(index),
      m_platform(platform),
      m_stat_interrupts_delivered(platform.stats(), "guest.interrupts_delivered",
                                  "interrupts delivered through a guest IDT"),
      m_stat_pi_processed(platform.stats(), "pi.processed", "posted-interrupt processing runs"),
      m_stat_ipiv_virtualized(platform.stats(), "ipiv.virtualized", "IPIs virtualized without VM exit"),
      m_stat_notifications_sent(platform.stats(), "notifications.sent",
                                "posted-interrupt notification IPIs sent by IPIv"),
      m_stat_host_interrupts(platform.stats(), "host.interrupts", "interrupts taken in root operation") {
    m_apic = std::make_unique<apic::LocalApic>("apic", static_cast<std::uint32_t>(index),
                                               platform.costs(), platform.clock(), bus);
    SC_HAS_PROCESS(LogicalProcessor);
    SC_THREAD(run);
}

LogicalProcessor::~LogicalProcessor() = default;

const model::CostTable& LogicalProcessor::costs() const { return m_platform.costs(); }
const model::Clock& LogicalProcessor::clock() const { return m_platform.clock(); }
const vmcs::VmxCapabilities& LogicalProcessor::capabilities() const {
    return m_platform.capabilities();
}

void LogicalProcessor::run() {
    if (m_software) m_software();
}

// ---- time ----
void LogicalProcessor::charge(Cost c) { m_local += costs()[c]; }
void LogicalProcessor::charge(Cost c, double times) { m_local += costs()[c] * times; }

void LogicalProcessor::step(Cost c, const char* name, const char* where, const char* flag) {
    const double cost = costs()[c];
    if (m_platform.tracer().any()) trace(flag, name, where, cost);
    m_local += cost;
}

void LogicalProcessor::trace(const char* flag, const char* step, const char* where,
                             double cost) const {
    if (!m_platform.tracer().enabled(flag)) return;  // nothing computed when tracing is off
    m_platform.tracer().line(flag, now_cycles(), m_index, mode_name(), step, where, cost);
}

void LogicalProcessor::sync() {
    if (m_local > 0.0) {
        sc_core::wait(clock().to_time(m_local));
        m_local = 0.0;
    }
}

sc_core::sc_time LogicalProcessor::hand_over() {
    sync_point();
    const sc_core::sc_time free_at = sc_core::sc_time_stamp() + annotation();
    m_local = 0.0;
    return free_at;
}

void LogicalProcessor::take_over(const sc_core::sc_time& free_at) {
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    if (free_at > now) m_local = std::max(m_local, clock().to_cycles(free_at - now));
}

sc_core::sc_time LogicalProcessor::annotation() const {
    return m_local > 0.0 ? clock().to_time(m_local) : sc_core::SC_ZERO_TIME;
}

template <class Events>
void LogicalProcessor::wait_absorbing_offset(const Events& events) {
    const double ahead = m_local;
    m_local = 0.0;
    const double start = now_cycles();
    sc_core::wait(events);
    const double waited = now_cycles() - start;
    if (waited < ahead) m_local = ahead - waited;
}

void LogicalProcessor::wait_for(const sc_core::sc_event& e) { wait_absorbing_offset(e); }
void LogicalProcessor::wait_for(const sc_core::sc_event_or_list& events) { wait_absorbing_offset(events); }

const sc_core::sc_event_or_list& LogicalProcessor::line_or_interrupt(std::uint64_t line, sc_core::sc_event& written) {
    // Built once per watched line: an or-list made by operator| is allocated anew for
    // every wait.
    auto& list = m_line_or_interrupt[line];
    if (!list) {
        list = std::make_unique<sc_core::sc_event_or_list>();
        *list |= written;
        *list |= m_apic->interrupt_event();
    }
    return *list;
}

double LogicalProcessor::now_cycles() const {
    return clock().to_cycles(sc_core::sc_time_stamp()) + m_local;
}

std::uint64_t LogicalProcessor::tsc() const {
    const double ratio = m_platform.profile().tsc_ghz / m_platform.profile().core_ghz;
    return static_cast<std::uint64_t>(now_cycles() * ratio);
}

void LogicalProcessor::Port::access(model::MemRequest& req) {
    m_lp.sync_point();
    req.agent = m_lp.m_index;
    sc_core::sc_time delay = m_lp.annotation();
    const double cycles = model::tlm_memory_access(m_lp.mem_socket, m_payload, req, delay);
    // The target may have waited the offset out (a store a poller waits for); the
    // latency is charged below.
    if (req.synchronized) m_lp.m_local = 0.0;
    if (m_lp.m_platform.tracer().any()) {
        char what[96];
        std::snprintf(what, sizeof what, "%s 0x%llx", model::mem_op_name(req.op),
                      static_cast<unsigned long long>(req.address));
        m_lp.trace("mem", what, cycles > m_lp.costs()[Cost::MemL1Hit] + m_lp.costs()[Cost::MemLockedRmw]
                                    ? "line transfer" : "", cycles);
    }
    m_lp.m_local += cycles;
}

// ---- helpers ----
std::uint32_t LogicalProcessor::pin() const {
    return static_cast<std::uint32_t>(vmcs().hw_read(Field::PinBasedVmExecControl));
}
std::uint32_t LogicalProcessor::primary() const {
    return static_cast<std::uint32_t>(vmcs().hw_read(Field::CpuBasedVmExecControl));
}
std::uint32_t LogicalProcessor::secondary() const { return vmcs::effective_secondary_controls(vmcs()); }
std::uint64_t LogicalProcessor::tertiary() const { return vmcs::effective_tertiary_controls(vmcs()); }
VirtualApicPage LogicalProcessor::vapic() {
    return VirtualApicPage(m_platform.memory(), vmcs().hw_read(Field::VirtualApicPageAddr));
}
std::uint64_t LogicalProcessor::rip(GuestContext& g) const { return g.vmcs.hw_read(Field::GuestRip); }
void LogicalProcessor::set_rip(GuestContext& g, std::uint64_t r) { g.vmcs.hw_write(Field::GuestRip, r); }
void LogicalProcessor::advance_rip(GuestContext& g, unsigned length) {
    set_rip(g, rip(g) + length);
    ++g.instructions;
    // STI / MOV-SS blocking lasts for one instruction.
    const auto intr = g.vmcs.hw_read(Field::GuestInterruptibilityInfo);
    if (intr & (vmcs::kBlockingBySti | vmcs::kBlockingByMovSs))
        g.vmcs.hw_write(Field::GuestInterruptibilityInfo,
                        intr & ~std::uint64_t{vmcs::kBlockingBySti | vmcs::kBlockingByMovSs});
}
bool LogicalProcessor::guest_if(GuestContext& g) const {
    return (g.vmcs.hw_read(Field::GuestRflags) & kRflagsIf) != 0;
}
void LogicalProcessor::count_exit(std::uint16_t basic) {
    const auto index = static_cast<std::uint8_t>(basic);  // basic reasons are below 256
    ++m_exits[index];
    model::Counter*& c = m_exit_counters[index];
    if (!c) c = &m_platform.stats().counter("exits." + std::to_string(basic), "count",
                                            "VM exits with this basic exit reason");
    ++*c;
}
std::uint64_t LogicalProcessor::exits(std::uint16_t basic) const {
    return basic < m_exits.size() ? m_exits[basic] : 0;
}
std::uint64_t LogicalProcessor::translate(GuestContext& g, std::uint64_t gpa) const {
    if (gpa >= g.memory_map.size)
        throw SimulationError(g.name + ": guest-physical address " + pid::hex_address(gpa) +
                              " is outside the VM's memory");
    return g.memory_map.host_base + gpa;
}
bool LogicalProcessor::is_apic_gpa(GuestContext&, std::uint64_t gpa) const {
    return gpa >= kGuestApicBase && gpa < kGuestApicBase + kGuestApicPageSize;
}

// ====================================================================================
// Root-mode API: VMX instructions (SDM 30)
// ====================================================================================
vmcs::VmxResult LogicalProcessor::vmxon(std::uint64_t region) {
    sync_point();
    step(Cost::VmxVmxon, "VMXON", "SDM 30 VMXON");
    if (m_vmx_on) {
        if (m_current) m_current->vmcs.hw_write(Field::VmInstructionError, 15);
        return m_current ? vmcs::VmxResult::fail_valid(vmcs::VmInstructionError::VmxonInVmxRoot)
                         : vmcs::VmxResult::fail_invalid();
    }
    if (region % model::kPageSize) return vmcs::VmxResult::fail_invalid();
    m_vmx_on = true;
    m_vmxon_region = region;
    m_current = nullptr;
    return vmcs::VmxResult::succeed();
}

vmcs::VmxResult LogicalProcessor::vmxoff() {
    sync_point();
    if (!m_vmx_on) return vmcs::VmxResult::fail_invalid();
    m_vmx_on = false;
    m_current = nullptr;
    return vmcs::VmxResult::succeed();
}

vmcs::VmxResult LogicalProcessor::vmclear(std::uint64_t address) {
    step(Cost::VmxVmptrld, "VMCLEAR", "SDM 30 VMCLEAR");
    auto fail = [&](vmcs::VmInstructionError e) {
        if (m_current) m_current->vmcs.hw_write(Field::VmInstructionError, vmcs::error_number(e));
        return m_current ? vmcs::VmxResult::fail_valid(e) : vmcs::VmxResult::fail_invalid();
    };
    if (address % model::kPageSize) return fail(vmcs::VmInstructionError::VmclearInvalidAddress);
    if (address == m_vmxon_region) return fail(vmcs::VmInstructionError::VmclearVmxonPointer);
    GuestContext* ctx = m_platform.vmcs_at(address);
    if (ctx) ctx->vmcs.vmclear();
    if (ctx == m_current) m_current = nullptr;
    return vmcs::VmxResult::succeed();
}

vmcs::VmxResult LogicalProcessor::vmptrld(std::uint64_t address) {
    step(Cost::VmxVmptrld, "VMPTRLD", "SDM 30 VMPTRLD");
    auto fail = [&](vmcs::VmInstructionError e) {
        if (m_current) m_current->vmcs.hw_write(Field::VmInstructionError, vmcs::error_number(e));
        return m_current ? vmcs::VmxResult::fail_valid(e) : vmcs::VmxResult::fail_invalid();
    };
    if (address % model::kPageSize) return fail(vmcs::VmInstructionError::VmptrldInvalidAddress);
    if (address == m_vmxon_region) return fail(vmcs::VmInstructionError::VmptrldVmxonPointer);
    GuestContext* ctx = m_platform.vmcs_at(address);
    std::uint32_t revision = 0;
    m_platform.memory().peek(address, &revision, sizeof revision);
    if (!ctx || revision != capabilities().vmcs_revision_id())
        return fail(vmcs::VmInstructionError::VmptrldIncorrectRevisionId);
    m_current = ctx;
    return vmcs::VmxResult::succeed();
}

vmcs::VmreadResult LogicalProcessor::vmread(Field f) {
    charge(Cost::VmxVmread);
    if (!m_current) return {vmcs::VmxResult::fail_invalid(), 0};
    auto r = m_current->vmcs.vmread(f);
    if (r.status.status == vmcs::VmxStatus::FailValid)
        m_current->vmcs.hw_write(Field::VmInstructionError, vmcs::error_number(r.status.error));
    return r;
}

vmcs::VmxResult LogicalProcessor::vmwrite(Field f, std::uint64_t value) {
    charge(Cost::VmxVmwrite);
    if (!m_current) return vmcs::VmxResult::fail_invalid();
    auto r = m_current->vmcs.vmwrite(f, value);
    if (r.status == vmcs::VmxStatus::FailValid)
        m_current->vmcs.hw_write(Field::VmInstructionError, vmcs::error_number(r.error));
    return r;
}

// ====================================================================================
// VM entry (SDM 26)
// ====================================================================================
EntryResult LogicalProcessor::vm_entry(bool launch) {
    sync_point();
    EntryResult result;
    // 26.1 basic checks.
    if (!m_vmx_on || !m_current) {
        result.outcome = EntryOutcome::VmFailInvalid;
        return result;
    }
    GuestContext& g = *m_current;
    vmcs::Vmcs& v = g.vmcs;
    auto fail_valid = [&](vmcs::VmInstructionError e, std::string what = {}) {
        v.hw_write(Field::VmInstructionError, vmcs::error_number(e));
        result.outcome = EntryOutcome::VmFailValid;
        result.error = e;
        result.failed_check = std::move(what);
        return result;
    };
    step(Cost::VmxEntryChecks, launch ? "VMLAUNCH: basic checks" : "VMRESUME: basic checks",
         "SDM 26.1");
    if (launch && v.launch_state() != vmcs::LaunchState::Clear)
        return fail_valid(vmcs::VmInstructionError::VmlaunchNonClearVmcs);
    if (!launch && v.launch_state() != vmcs::LaunchState::Launched)
        return fail_valid(vmcs::VmInstructionError::VmresumeNonLaunchedVmcs);
    // 26.2 checks on VMX controls (error 7).
    const vmcs::VtprReader read_vtpr = [this](std::uint64_t pa) {
        std::uint8_t b = 0;
        m_platform.memory().peek(pa, &b, 1);
        return b;
    };
    if (auto f = vmcs::check_vmx_controls(v, capabilities(), read_vtpr)) {
        trace("vmx", "VM entry fails: invalid control field", "SDM 26.2.1", 0);
        return fail_valid(vmcs::VmInstructionError::EntryInvalidControlField,
                          std::string(f->name) + " (" + std::string(f->sdm_section) + ")");
    }
    // 26.3 checks on the guest state (failure: VM exit with bit 31 set, reason 33).
    if (auto gf = vmcs::check_guest_activity_state(v, capabilities())) {
        step(Cost::VmxExitLoadHost, "VM entry fails: invalid guest state; load host state",
             "SDM 26.7");
        v.set_exit_info(Field::VmExitReason, gf->exit_reason);
        v.set_exit_info(Field::ExitQualification, gf->exit_qualification);
        result.outcome = EntryOutcome::Exited;
        result.exit.reason = gf->exit_reason;
        result.exit.qualification = gf->exit_qualification;
        result.failed_check = std::string(gf->name) + " (" + std::string(gf->sdm_section) + ")";
        count_exit(result.exit.basic());
        return result;
    }
    // 26.3.2 load guest state.
    step(Cost::VmxEntryLoadGuest, "VM entry: load guest state", "SDM 26.3.2");
    v.set_launch_state(vmcs::LaunchState::Launched);
    m_non_root = true;
    // 26.3.2.5 / 29.1.3: with virtual-interrupt delivery, RVI/SVI come from the guest
    // interrupt status, then PPR virtualization; evaluation of pending virtual interrupts
    // happens at the first instruction boundary (event_window).
    if (secondary() & vmcs::kSecondaryVirtualInterruptDelivery) {
        step(Cost::VmxEntryVirtualApic, "VM entry: load RVI/SVI, PPR virtualization",
             "SDM 26.3.2.5, 29.1.3");
        VirtualApicPage page = vapic();
        ppr_virtualization(v, page);
    }
    // 26.6 event injection: a valid VM-entry interruption-information field delivers the
    // event through the guest IDT before any instruction; a vectoring entry ends active.
    const auto entry_info = v.hw_read(Field::VmEntryIntrInfoField);
    if (entry_info & vmcs::kIntrInfoValid) {
        g.pending_injection = static_cast<int>(entry_info & vmcs::kIntrInfoVectorMask);
        v.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
    }
    // 26.7.7 (SDM16 26.6.7) VM exits induced by the TPR threshold: with "use TPR shadow"
    // and "virtualize APIC accesses" 1 and virtual-interrupt delivery 0, a TPR-below-
    // threshold VM exit occurs immediately after VM entry (after any event injection) if
    // TPR threshold[3:0] > VTPR[7:4]. (With "virtualize APIC accesses" 0 the entry checks
    // rule that case out.)
    {
        const std::uint32_t sec = secondary();
        if ((primary() & vmcs::kPrimaryUseTprShadow) && (sec & vmcs::kSecondaryVirtualizeApicAccesses) &&
            !(sec & vmcs::kSecondaryVirtualInterruptDelivery)) {
            const auto threshold = v.hw_read(Field::TprThreshold) & vmcs::kTprThresholdMask;
            m_tpr_threshold_exit_pending = threshold > ((vapic().read32(kVapicTpr) >> 4) & 0xF);
        } else {
            m_tpr_threshold_exit_pending = false;
        }
    }
    // Hand the processor to the guest thread; control returns here at the next VM exit.
    g.lp = this;
    m_guest_finished = false;
    if (m_platform.timeline().enabled()) m_platform.timeline().begin(now_cycles(), m_index, g.name, "guest");
    if (!g.thread_started)
        start_guest_thread(g);
    else
        g.resume_event.notify(sc_core::SC_ZERO_TIME);
    sc_core::wait(m_exit_event);
    if (m_guest_finished) {
        result.outcome = EntryOutcome::GuestFinished;
        return result;
    }
    result.outcome = EntryOutcome::Exited;
    result.exit = m_last_exit;
    return result;
}

void LogicalProcessor::start_guest_thread(GuestContext& g) {
    g.thread_started = true;
    if (!g.api) g.api = std::make_unique<GuestCpu>(g);
    sc_core::sc_spawn_options opts;
    opts.set_stack_size(256 * 1024);
    GuestContext* gp = &g;
    std::string name = g.name + "_guest";
    for (char& ch : name)
        if (ch == '.') ch = '_';
    sc_core::sc_spawn([this, gp]() { guest_thread_body(gp); }, sc_core::sc_gen_unique_name(name.c_str()),
                      &opts);
}

void LogicalProcessor::guest_thread_body(GuestContext* gp) {
    GuestContext& g = *gp;
    // An inactive activity state at entry: wait for the event that activates it.
    while (!g.lp->event_window(g)) {
    }
    const std::uint64_t linear = g.vmcs.hw_read(Field::GuestCsBase) + g.vmcs.hw_read(Field::GuestRip);
    GuestProgram program = g.code ? g.code(linear) : GuestProgram{};
    if (!program)
        throw SimulationError(g.name + ": no guest code at linear address " +
                              pid::hex_address(linear));
    program(*g.api);
    // The guest program returned: the VM has nothing left to run on this vCPU.
    LogicalProcessor& lp = *g.lp;
    lp.sync_point();
    g.finished = true;
    lp.m_platform.timeline().end(lp.now_cycles(), lp.m_index);
    lp.m_guest_finished = true;
    lp.m_non_root = false;
    lp.m_exit_event.notify(sc_core::SC_ZERO_TIME);
}

// ====================================================================================
// VM exit (SDM 27)
// ====================================================================================
void LogicalProcessor::vm_exit(GuestContext& g, std::uint32_t reason, std::uint64_t qualification,
                               std::uint32_t intr_info, std::uint32_t length) {
    vmcs::Vmcs& v = g.vmcs;
    // 27.2 record information about the VM exit.
    step(Cost::VmxExitSaveGuest, "VM exit: record exit information, save guest state",
         "SDM 27.2, 27.3");
    v.set_exit_info(Field::VmExitReason, reason);
    v.set_exit_info(Field::ExitQualification, qualification);
    v.set_exit_info(Field::VmExitIntrInfo, intr_info);
    v.set_exit_info(Field::VmExitInstructionLen, length);
    v.hw_write(Field::VmEntryIntrInfoField,
               v.hw_read(Field::VmEntryIntrInfoField) & ~std::uint64_t{vmcs::kIntrInfoValid});
    // 27.5 load host state; INIT is blocked again in root operation.
    step(Cost::VmxExitLoadHost, "VM exit: load host state", "SDM 27.5");
    m_non_root = false;
    const auto basic = static_cast<std::uint16_t>(reason & vmcs::kExitReasonBasicMask);
    count_exit(basic);
    m_last_exit = VmExit{reason, qualification, intr_info, length};
    if (m_platform.timeline().enabled()) {
        m_platform.timeline().end(now_cycles(), m_index);
        m_platform.timeline().instant(now_cycles(), m_index,
                                      "VM exit " + std::string(vmcs::exit_reason_name(static_cast<vmcs::ExitReason>(basic))),
                                      "vmx", {{"reason", basic}, {"qualification", qualification}});
    }
    m_exit_event.notify(sc_core::SC_ZERO_TIME);
    // The guest thread sleeps until the VMM enters this context again (possibly on
    // another processor).
    sc_core::wait(g.resume_event);
}

// ====================================================================================
// Instruction boundary: event recognition and delivery (SDM 6.9 priorities, 25.2, 29.2)
// ====================================================================================
bool LogicalProcessor::event_window(GuestContext& g) {
    sync_point();
    vmcs::Vmcs& v = g.vmcs;
    if (g.pending_injection >= 0) {
        const auto vec = static_cast<std::uint8_t>(g.pending_injection);
        g.pending_injection = -1;
        v.hw_write(Field::VmEntryIntrInfoField,
                   v.hw_read(Field::VmEntryIntrInfoField) & ~std::uint64_t{vmcs::kIntrInfoValid});
        trace("vmx", "VM entry: deliver injected event", "SDM 26.6", 0);
        deliver_guest_interrupt(g, vec);
        return false;
    }
    if (m_tpr_threshold_exit_pending) {
        m_tpr_threshold_exit_pending = false;
        trace("vmx", "TPR threshold above VTPR after VM entry: VM exit", "SDM 26.7.7", 0);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::TprBelowThreshold), 0);
        return false;
    }
    for (;;) {
        const auto activity = static_cast<ActivityState>(v.hw_read(Field::GuestActivityState));
        // INIT: VM exit (reason 3), except in wait-for-SIPI where it is blocked (25.2).
        if (m_apic->init_pending() && activity != ActivityState::WaitForSipi) {
            m_apic->clear_init();
            trace("vmx", "INIT signal in VMX non-root: VM exit", "SDM 25.2", 0);
            vm_exit(g, static_cast<std::uint32_t>(ExitReason::InitSignal), 0);
            return false;
        }
        // SIPI: VM exit (reason 4) in wait-for-SIPI; discarded in any other state.
        if (m_apic->sipi_pending()) {
            const std::uint8_t vec = m_apic->sipi_vector();
            m_apic->clear_sipi();
            if (activity == ActivityState::WaitForSipi) {
                trace("vmx", "SIPI in wait-for-SIPI: VM exit", "SDM 25.2", 0);
                vm_exit(g, static_cast<std::uint32_t>(ExitReason::Sipi), vec & vmcs::kSipiVectorMask);
                return false;
            }
            trace("vmx", "SIPI outside wait-for-SIPI: discarded", "SDM 26.6.2", 0);
            continue;
        }
        if (activity == ActivityState::WaitForSipi || activity == ActivityState::Shutdown) {
            // External interrupts, NMIs (and INIT in wait-for-SIPI) are blocked.
            wait_for(m_apic->interrupt_event());
            sync_point();
            continue;
        }
        const bool sti_blocked =
            (v.hw_read(Field::GuestInterruptibilityInfo) &
             (vmcs::kBlockingBySti | vmcs::kBlockingByMovSs)) != 0;
        // Interrupt-window exiting (SDM 25.2): an exit as soon as interrupts are enabled.
        if ((primary() & vmcs::kPrimaryInterruptWindowExiting) && guest_if(g) && !sti_blocked) {
            vm_exit(g, static_cast<std::uint32_t>(ExitReason::InterruptWindow), 0);
            return false;
        }
        // Virtual-interrupt delivery ranks above external interrupts (SDM 29.2.2).
        if (secondary() & vmcs::kSecondaryVirtualInterruptDelivery) {
            VirtualApicPage page = vapic();
            const bool recognized = evaluate_pending_virtual_interrupts(v, page);
            if (recognized && guest_if(g) && !sti_blocked &&
                !(primary() & vmcs::kPrimaryInterruptWindowExiting)) {
                step(Cost::VmxEvaluatePending, "evaluate pending virtual interrupts: recognized",
                     "SDM 29.2.1");
                if (activity == ActivityState::Hlt)
                    v.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
                deliver_virtual_interrupt(g);
                return false;  // guest code ran: re-evaluate on the current processor
            }
        }
        // External interrupts (SDM 25.2, 29.6).
        if (m_apic->intr_pending()) {
            if (pin() & vmcs::kPinExternalInterruptExiting) {
                step(Cost::VmxExternalInterruptExit, "external interrupt recognized", "SDM 25.2");
                const auto exit_ctl = v.hw_read(Field::VmExitControls);
                if (exit_ctl & vmcs::kExitAcknowledgeInterruptOnExit) {
                    const std::uint8_t vec = m_apic->acknowledge();
                    step(Cost::ApicInterruptAck, "acknowledge local APIC", "SDM 29.6 step 1", "apic");
                    if ((pin() & vmcs::kPinProcessPostedInterrupts) &&
                        vec == static_cast<std::uint8_t>(v.hw_read(Field::PostedIntrNv))) {
                        posted_interrupt_processing(g, vec);
                        continue;
                    }
                    vm_exit(g, static_cast<std::uint32_t>(ExitReason::ExternalInterrupt), 0,
                            intr_info_external(vec));
                    return false;
                }
                vm_exit(g, static_cast<std::uint32_t>(ExitReason::ExternalInterrupt), 0, 0);
                return false;
            }
            if (guest_if(g) && !sti_blocked) {
                // The guest owns the physical APIC (no external-interrupt exiting).
                const std::uint8_t vec = m_apic->acknowledge();
                step(Cost::ApicInterruptAck, "acknowledge local APIC", "SDM 10.8", "apic");
                if (activity == ActivityState::Hlt)
                    v.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Active));
                deliver_guest_interrupt(g, vec);
                return false;
            }
        }
        if (activity == ActivityState::Hlt) {
            wait_for(m_apic->interrupt_event());
            sync_point();
            continue;
        }
        return true;
    }
}

void LogicalProcessor::deliver_virtual_interrupt(GuestContext& g) {
    step(Cost::VmxVirtualInterruptDelivery, "virtual-interrupt delivery", "SDM 29.2.2");
    VirtualApicPage page = vapic();
    const std::uint8_t vec = virtual_interrupt_delivery_update(g.vmcs, page);
    deliver_guest_interrupt(g, vec);
}

void LogicalProcessor::deliver_guest_interrupt(GuestContext& g, std::uint8_t vector) {
    step(Cost::GuestEventDelivery, "deliver through the guest IDT", "SDM 6.12", "guest");
    ++g.delivered_interrupts;
    ++m_stat_interrupts_delivered;
    GuestHandler handler = g.idt[vector];
    if (!handler)
        throw SimulationError(g.name + ": interrupt vector " + std::to_string(vector) +
                              " delivered with no guest IDT handler");
    const std::uint64_t rflags = g.vmcs.hw_read(Field::GuestRflags);
    // The delivery pushes RIP (the frame); the handler runs elsewhere; IRET pops it.
    const std::uint64_t outer_return_rip = g.return_rip;
    g.return_rip = rip(g);
    g.vmcs.hw_write(Field::GuestRflags, rflags & ~kRflagsIf);  // interrupt gate
    // The handler saves and restores the registers it uses (as an ISR stub pushes and
    // pops them): the interrupted instruction's operands (e.g. WRMSR's ECX, EDX:EAX, set
    // before the boundary where the interrupt was taken) and its decoded MMIO access must
    // survive the handler's own instructions.
    const GuestRegisters saved_regs = g.regs;
    const DecodedMmio saved_mmio = g.mmio;
    handler(*g.api, vector);
    g.regs = saved_regs;
    g.mmio = saved_mmio;
    // IRET, on whichever processor the vCPU now runs.
    LogicalProcessor& lp = *g.lp;
    lp.step(Cost::GuestIret, "IRET", "SDM 6.14", "guest");
    lp.set_rip(g, g.return_rip);
    g.return_rip = outer_return_rip;
    g.vmcs.hw_write(Field::GuestRflags, g.vmcs.hw_read(Field::GuestRflags) | (rflags & kRflagsIf));
}

// ====================================================================================
// Posted-interrupt processing (SDM 29.6, reference 6.3)
// ====================================================================================
bool LogicalProcessor::posted_interrupt_processing(GuestContext& g, std::uint8_t vector) {
    vmcs::Vmcs& v = g.vmcs;
    step(Cost::VmxPostedInterruptProcessing, "posted-interrupt processing (notification vector)",
         "SDM 29.6");
    (void)vector;  // step 1-2: the acknowledged vector is the notification vector
    pid::PostedInterruptDescriptor desc(m_port, v.hw_read(Field::PostedIntrDescAddr));
    // Step 3: clear ON (locked AND).
    desc.clear_on();
    trace("pi", "step 3: clear PID.ON (locked)", "SDM 29.6", 0);
    // Step 4: EOI to the local APIC, dismissing the notification.
    m_apic->eoi();
    step(Cost::ApicEoi, "step 4: EOI to the local APIC", "SDM 29.6", "pi");
    // Step 5: OR the PIR into VIRR and clear PIR (one locked access).
    const pid::Pir pir = desc.fetch_and_clear_pir();
    trace("pi", "step 5: PIR -> VIRR, clear PIR (locked)", "SDM 29.6", 0);
    VirtualApicPage page = vapic();
    merge_pir_into_virr(v, page, pir.words.data());
    // Step 6: RVI := max(RVI, highest PIR vector) (done by merge_pir_into_virr).
    // Step 7: evaluate pending virtual interrupts (at the caller's next iteration).
    step(Cost::VmxEvaluatePending, "step 7: evaluate pending virtual interrupts", "SDM 29.6",
         "pi");
    ++m_stat_pi_processed;
    return true;
}

// ====================================================================================
// IPI virtualization (new SDM 30.1.6, reference 5.3)
// ====================================================================================
bool LogicalProcessor::virtualize_ipi(GuestContext& g, std::uint8_t vector, std::uint32_t apic_id) {
    vmcs::Vmcs& v = g.vmcs;
    step(Cost::VmxIpivMicrocode, "IPI virtualization", "SDM 30.1.6");
    auto decline = [&](const char* why) {
        trace("vmx", why, "SDM 30.1.6", 0);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicWrite), kVapicIcrLo);
        return false;
    };
    // Step 1: illegal vector.
    if (vector < kFirstValidVector) return decline("IPIv step 1: vector < 16: APIC-write exit");
    // Step 2: bound check against the last PID-pointer index.
    if (apic_id > v.hw_read(Field::LastPidPointerIndex))
        return decline("IPIv step 2: APIC ID beyond last PID-pointer index: APIC-write exit");
    // Step 3: read the 8-byte PID-pointer table entry.
    const std::uint64_t table = v.hw_read(Field::PidPointerTable);
    const pid::PidTableEntry entry{
        m_port.read64(table + std::uint64_t{apic_id} * pid::kPidTableEntryBytes)};
    trace("vmx", "IPIv step 3: read PID-pointer table entry", "SDM 30.1.6", 0);
    // Step 4: the entry must be valid, reserved bits clear, within the address width.
    if (!entry.usable(m_platform.profile().features.physical_address_width))
        return decline("IPIv step 4: PID-pointer entry not usable: APIC-write exit");
    pid::PostedInterruptDescriptor desc(m_port, entry.descriptor_address());
    // Step 5: first locked RMW: PIR[V] := 1.
    desc.ipiv_set_pir(vector);
    trace("vmx", "IPIv step 5: set PIR bit (locked RMW)", "SDM 30.1.6", 0);
    // Step 6: second locked RMW: ON := 1 and notify iff ON = 0 and SN = 0.
    const pid::IpivNotification n = desc.ipiv_update_notification();
    trace("vmx", n.send_notify ? "IPIv step 6: ON := 1, notify" : "IPIv step 6: no notification",
          "SDM 30.1.6", 0);
    ++m_stat_ipiv_virtualized;
    // Step 7: the notification, an ordinary physical IPI through this processor's APIC.
    if (n.send_notify) send_notification(n.nv, n.ndst);
    return true;
}

void LogicalProcessor::send_notification(std::uint8_t nv, std::uint32_t ndst) {
    ++m_notifications_sent;
    if (m_platform.timeline().enabled())
        m_platform.timeline().instant(now_cycles(), m_index, "IPIv notification", "ipiv", {{"nv", nv}, {"ndst", ndst}});
    ++m_stat_notifications_sent;
    sync_point();
    if (m_apic->x2apic_mode()) {
        const auto r = m_apic->wrmsr(kMsrX2apicIcr, (std::uint64_t{ndst} << kX2apicIcrDestShift) | nv, annotation());
        charge_cycles(r.cycles);
    } else {
        const std::uint32_t dest = pid::apic_id_from_ndst(ndst, false);
        charge_cycles(m_apic->mmio_write(kVapicIcrHi, dest << kXapicIcrDestShift, annotation()).cycles);
        charge_cycles(m_apic->mmio_write(kVapicIcrLo, nv, annotation()).cycles);
    }
}

// ====================================================================================
// APIC-access page (SDM 29.4) and APIC-write emulation (29.4.3.2)
// ====================================================================================
bool LogicalProcessor::apic_access_mmio(GuestContext& g, std::uint32_t offset, unsigned size,
                                        bool write, std::uint64_t& value, std::uint64_t start_rip,
                                        unsigned length) {
    const bool tpr_shadow = primary() & vmcs::kPrimaryUseTprShadow;
    const std::uint32_t sec = secondary();
    const bool vid = sec & vmcs::kSecondaryVirtualInterruptDelivery;
    const bool reg_virt = sec & vmcs::kSecondaryApicRegisterVirtualization;
    const bool ipiv = tertiary() & vmcs::kTertiaryIpiVirt;
    const bool in_low_dword = (offset & kApicSlotMask) + size <= 4;
    bool virtualize = false;
    if (tpr_shadow && size <= 4 && in_low_dword) {
        const std::uint32_t slot = offset & ~kApicSlotMask;
        if (write)
            virtualize = slot == kVapicTpr || (vid && (slot == kVapicEoi || slot == kVapicIcrLo)) ||
                         (ipiv && slot == kVapicIcrLo) || (reg_virt && apic_reg_virt_write_offset(offset));
        else  // SDM16 29.4.2: without APIC-register virtualization only the TPR is read
            virtualize = reg_virt ? apic_reg_virt_read_offset(offset) : slot == kVapicTpr;
    }
    if (!virtualize) {
        // APIC-access VM exit: fault-like, qualification = offset | access type.
        const auto type = write ? vmcs::ApicAccessType::LinearWrite : vmcs::ApicAccessType::LinearRead;
        g.mmio = DecodedMmio{true, write, kGuestApicBase + offset, size, write ? value : 0};
        set_rip(g, start_rip);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicAccess),
                offset | (static_cast<std::uint64_t>(type) << vmcs::kApicAccessTypeShift), 0, length);
        return false;
    }
    step(Cost::VmxApicAccessVirt, write ? "virtualized write to the APIC-access page"
                                        : "virtualized read of the APIC-access page",
         write ? "SDM 29.4.3" : "SDM 29.4.2");
    VirtualApicPage page = vapic();
    if (!write) {
        value = page.read32(offset & ~3u) >> (8 * (offset & 3u));
        advance_rip(g, length);
        return true;
    }
    page.write32(offset & ~3u, static_cast<std::uint32_t>(value));
    advance_rip(g, length);  // the write completes; APIC-write emulation follows
    return apic_write_emulation(g, offset & ~kApicSlotMask);
}

bool LogicalProcessor::apic_write_emulation(GuestContext& g, std::uint32_t offset) {
    vmcs::Vmcs& v = g.vmcs;
    step(Cost::VmxApicWriteEmulation, "APIC-write emulation", "SDM 29.4.3.2");
    const bool vid = secondary() & vmcs::kSecondaryVirtualInterruptDelivery;
    VirtualApicPage page = vapic();
    auto apic_write_exit = [&](std::uint32_t off) {
        trace("vmx", "APIC-write VM exit (trap-like)", "SDM 29.4.3.3", 0);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicWrite), off);
        return false;
    };
    switch (offset) {
        case kVapicTpr:
            page.write32(kVapicTpr, page.read32(kVapicTpr) & 0xFF);  // clear bytes 3:1
            return tpr_virtualization_flow(g);
        case kVapicEoi:
            if (!vid) return apic_write_exit(offset);
            page.write32(kVapicEoi, 0);
            return eoi_virtualization_flow(g);
        case kVapicIcrLo: {
            const std::uint32_t icr_lo = page.read32(kVapicIcrLo);
            if ((tertiary() & vmcs::kTertiaryIpiVirt) && icr_qualifies_for_ipiv(icr_lo)) {
                const std::uint32_t dest = page.read32(kVapicIcrHi) >> kXapicIcrDestShift;
                return virtualize_ipi(g, static_cast<std::uint8_t>(icr_lo & 0xFF), dest);
            }
            if (vid && vicr_is_self_ipi(icr_lo)) {
                self_ipi_virtualization_flow(g, static_cast<std::uint8_t>(icr_lo & 0xFF));
                return true;
            }
            return apic_write_exit(offset);
        }
        case kVapicIcrHi:
            page.write32(kVapicIcrHi, page.read32(kVapicIcrHi) & 0xFF000000u);  // clear bytes 2:0
            return true;
        default:
            (void)v;
            return apic_write_exit(offset);
    }
}

bool LogicalProcessor::tpr_virtualization_flow(GuestContext& g) {
    step(Cost::VmxTprVirt, "TPR virtualization", "SDM 29.1.2");
    VirtualApicPage page = vapic();
    if (!(secondary() & vmcs::kSecondaryVirtualInterruptDelivery)) {
        const auto threshold = g.vmcs.hw_read(Field::TprThreshold) & 0xF;
        if (((page.read32(kVapicTpr) >> 4) & 0xF) < threshold) {
            vm_exit(g, static_cast<std::uint32_t>(ExitReason::TprBelowThreshold), 0);
            return false;
        }
        return true;
    }
    step(Cost::VmxPprVirt, "PPR virtualization", "SDM 29.1.3");
    ppr_virtualization(g.vmcs, page);
    return true;  // evaluation happens at the next instruction boundary
}

bool LogicalProcessor::eoi_virtualization_flow(GuestContext& g) {
    step(Cost::VmxEoiVirt, "EOI virtualization", "SDM 29.1.4");
    VirtualApicPage page = vapic();
    const EoiVirtualizationResult r = eoi_virtualization(g.vmcs, page);
    if (r.eoi_exit) {
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::VirtualizedEoi), r.vector);
        return false;
    }
    return true;
}

void LogicalProcessor::self_ipi_virtualization_flow(GuestContext& g, std::uint8_t vector) {
    step(Cost::VmxSelfIpiVirt, "self-IPI virtualization", "SDM 29.1.5");
    VirtualApicPage page = vapic();
    self_ipi_virtualization(g.vmcs, page, vector);
}

// ====================================================================================
// MSR accesses (SDM 25.1.3, 29.5)
// ====================================================================================
bool LogicalProcessor::msr_bitmap_intercepts(std::uint32_t msr, bool write) const {
    if (!(primary() & vmcs::kPrimaryUseMsrBitmaps)) return true;
    std::uint64_t base;
    std::uint32_t index;
    if (msr <= kMsrLowLast) {
        base = write ? kMsrBitmapWriteLow : kMsrBitmapReadLow;
        index = msr;
    } else if (msr >= kMsrHighFirst && msr <= kMsrHighLast) {
        base = write ? kMsrBitmapWriteHigh : kMsrBitmapReadHigh;
        index = msr - kMsrHighFirst;
    } else {
        return true;
    }
    std::uint8_t byte = 0;
    m_platform.memory().peek(vmcs().hw_read(Field::MsrBitmap) + base + index / 8, &byte, 1);
    return (byte >> (index % 8)) & 1u;
}

// WRMSR of an x2APIC MSR that the bitmap does not intercept, with virtualize x2APIC mode.
// Returns false if a VM exit happened; `handled` = the access was virtualized.
bool LogicalProcessor::x2apic_msr_write(GuestContext& g, std::uint32_t msr, std::uint64_t value,
                                        std::uint64_t start_rip, unsigned length, bool& handled) {
    handled = true;
    const bool vid = secondary() & vmcs::kSecondaryVirtualInterruptDelivery;
    const bool ipiv = tertiary() & vmcs::kTertiaryIpiVirt;
    const auto eax = static_cast<std::uint32_t>(value);
    const auto edx = static_cast<std::uint32_t>(value >> 32);
    VirtualApicPage page = vapic();
    auto gp = [&]() {
        set_rip(g, start_rip);
        deliver_guest_interrupt(g, kVectorGp);
        return false;
    };
    if (msr == kMsrX2apicTpr) {
        if (edx || (eax & ~0xFFu)) return gp();
        step(Cost::VmxMsrVirt, "WRMSR 808H virtualized", "SDM 29.5");
        page.write64(kVapicTpr, value);
        advance_rip(g, length);
        return tpr_virtualization_flow(g);
    }
    if (msr == kMsrX2apicEoi && vid) {
        if (value) return gp();
        step(Cost::VmxMsrVirt, "WRMSR 80BH virtualized", "SDM 29.5");
        page.write64(kVapicEoi, 0);
        advance_rip(g, length);
        return eoi_virtualization_flow(g);
    }
    if (msr == kMsrX2apicSelfIpi && vid) {
        if (edx || (eax & ~0xFFu)) return gp();
        step(Cost::VmxMsrVirt, "WRMSR 83FH virtualized", "SDM 29.5");
        page.write64(kVapicSelfIpi, value);
        advance_rip(g, length);
        if (eax & 0xF0) {
            self_ipi_virtualization_flow(g, static_cast<std::uint8_t>(eax));
            return true;
        }
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicWrite), kVapicSelfIpi);
        return false;
    }
    if (msr == kMsrX2apicIcr && ipiv) {
        // New SDM 30.5: reserved-bit #GP, the 64-bit value to VICR, then the IPIv test.
        if (eax & kIcrReservedX2apic) return gp();
        step(Cost::VmxMsrVirt, "WRMSR 830H virtualized (IPI virtualization)", "SDM 30.5");
        page.write64(kVapicIcrLo, value);
        advance_rip(g, length);
        if (icr_qualifies_for_ipiv(eax))
            return virtualize_ipi(g, static_cast<std::uint8_t>(eax), edx);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::ApicWrite), kVapicIcrLo);
        return false;
    }
    handled = false;  // operates normally: the physical x2APIC register
    return true;
}

bool LogicalProcessor::x2apic_msr_read(GuestContext& g, std::uint32_t msr, std::uint64_t& value,
                                       bool& handled) {
    handled = false;
    VirtualApicPage page = vapic();
    if (secondary() & vmcs::kSecondaryApicRegisterVirtualization) {
        step(Cost::VmxMsrVirt, "RDMSR of an x2APIC MSR virtualized", "SDM 29.5");
        value = page.read64((msr & 0xFF) << 4);
        handled = true;
    } else if (msr == kMsrX2apicTpr) {
        step(Cost::VmxMsrVirt, "RDMSR 808H virtualized", "SDM 29.5");
        value = page.read64(kVapicTpr);
        handled = true;
    }
    (void)g;
    return true;
}

// ====================================================================================
// Guest instructions (called on the guest thread by cpu/guest.cpp)
// ====================================================================================
bool LogicalProcessor::exec_simple(GuestContext& g, Cost c, unsigned length) {
    charge(c);
    advance_rip(g, length);
    return true;
}

bool LogicalProcessor::exec_rdtsc(GuestContext& g, std::uint64_t& out) {
    charge(Cost::GuestRdtsc);
    std::uint64_t t = tsc();
    if (primary() & vmcs::kPrimaryUseTscOffsetting) t += g.vmcs.hw_read(Field::TscOffset);
    out = t;
    advance_rip(g, kLenRdtsc);
    return true;
}

bool LogicalProcessor::exec_pause(GuestContext& g) { return exec_simple(g, Cost::GuestPause, kLenPause); }

bool LogicalProcessor::exec_compute(GuestContext& g, double cycles) {
    // Straight-line work: its cycles, and at least one retired instruction (which ends an
    // STI or MOV-SS blocking window, SDM 6.8.3).
    charge_cycles(cycles);
    advance_rip(g, kLenStraightLine);
    return true;
}

bool LogicalProcessor::exec_cpuid(GuestContext& g) {
    vm_exit(g, static_cast<std::uint32_t>(ExitReason::Cpuid), 0, 0, kLenCpuid);
    return false;
}

bool LogicalProcessor::exec_vmcall(GuestContext& g) {
    vm_exit(g, static_cast<std::uint32_t>(ExitReason::Vmcall), 0, 0, kLenVmcall);
    return false;
}

bool LogicalProcessor::exec_vmx_instruction(GuestContext& g, ExitReason reason, unsigned length) {
    vm_exit(g, static_cast<std::uint32_t>(reason), 0, 0, length);
    return false;
}

bool LogicalProcessor::exec_hlt(GuestContext& g) {
    if (primary() & vmcs::kPrimaryHltExiting) {
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::Hlt), 0, 0, kLenHlt);
        return false;
    }
    step(Cost::GuestHltEnter, "HLT: enter the HLT state", "SDM 25.1");
    advance_rip(g, kLenHlt);
    g.vmcs.hw_write(Field::GuestActivityState, static_cast<std::uint64_t>(ActivityState::Hlt));
    return true;  // the next event window waits in HLT
}

void LogicalProcessor::exec_sti(GuestContext& g) {
    charge(Cost::GuestStiCli);
    const bool was_set = guest_if(g);
    advance_rip(g, 1);
    g.vmcs.hw_write(Field::GuestRflags, g.vmcs.hw_read(Field::GuestRflags) | kRflagsIf);
    if (!was_set)
        g.vmcs.hw_write(Field::GuestInterruptibilityInfo,
                        g.vmcs.hw_read(Field::GuestInterruptibilityInfo) | vmcs::kBlockingBySti);
}

void LogicalProcessor::exec_cli(GuestContext& g) {
    charge(Cost::GuestStiCli);
    advance_rip(g, 1);
    g.vmcs.hw_write(Field::GuestRflags, g.vmcs.hw_read(Field::GuestRflags) & ~kRflagsIf);
}

bool LogicalProcessor::exec_wrmsr(GuestContext& g) {
    const auto msr = static_cast<std::uint32_t>(g.regs.rcx);
    const std::uint64_t value = (g.regs.rdx << 32) | (g.regs.rax & 0xFFFFFFFFu);
    const std::uint64_t start = rip(g);
    if (msr_bitmap_intercepts(msr, true)) {
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::Wrmsr), 0, 0, kLenWrmsr);
        return false;
    }
    if (msr >= kX2apicMsrFirst && msr <= kX2apicMsrLast &&
        (secondary() & vmcs::kSecondaryVirtualizeX2apicMode)) {
        bool handled = false;
        const bool done = x2apic_msr_write(g, msr, value, start, kLenWrmsr, handled);
        if (handled) return done;
    }
    // Operates normally: the physical register (x2APIC range) or an MSR the model
    // treats as a no-op.
    if (msr >= kX2apicMsrFirst && msr <= kX2apicMsrLast) {
        sync_point();
        const auto r = m_apic->wrmsr(msr, value, annotation());
        charge_cycles(r.cycles);
        if (r.gp) {
            deliver_guest_interrupt(g, kVectorGp);
            return false;
        }
    }
    advance_rip(g, kLenWrmsr);
    return true;
}

bool LogicalProcessor::exec_rdmsr(GuestContext& g) {
    const auto msr = static_cast<std::uint32_t>(g.regs.rcx);
    if (msr_bitmap_intercepts(msr, false)) {
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::Rdmsr), 0, 0, kLenRdmsr);
        return false;
    }
    std::uint64_t value = 0;
    bool handled = false;
    if (msr >= kX2apicMsrFirst && msr <= kX2apicMsrLast &&
        (secondary() & vmcs::kSecondaryVirtualizeX2apicMode))
        x2apic_msr_read(g, msr, value, handled);
    if (!handled && msr >= kX2apicMsrFirst && msr <= kX2apicMsrLast) {
        sync_point();
        const auto r = m_apic->rdmsr(msr, annotation());
        charge_cycles(r.cycles);
        if (r.gp) {
            deliver_guest_interrupt(g, kVectorGp);
            return false;
        }
        value = r.value;
    }
    g.regs.rax = value & 0xFFFFFFFFu;
    g.regs.rdx = value >> 32;
    advance_rip(g, kLenRdmsr);
    return true;
}

bool LogicalProcessor::exec_mmio_read(GuestContext& g, std::uint64_t gpa, unsigned size,
                                      std::uint64_t& out) {
    const std::uint64_t start = rip(g);
    if (is_apic_gpa(g, gpa) && (secondary() & vmcs::kSecondaryVirtualizeApicAccesses))
        return apic_access_mmio(g, static_cast<std::uint32_t>(gpa - kGuestApicBase), size, false,
                                out, start, kLenMovMmio);
    if (is_apic_gpa(g, gpa)) {
        // No APIC-access page: the MMIO hole is an EPT misconfiguration (KVM's MMIO SPTEs).
        g.mmio = DecodedMmio{true, false, gpa, size, 0};
        g.vmcs.set_exit_info(Field::GuestPhysicalAddress, gpa);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::EptMisconfig), 0, 0, kLenMovMmio);
        return false;
    }
    model::MemRequest req;
    req.op = model::MemOp::Read;
    req.address = gpa;
    req.size = size;
    exec_memory(g, req);
    out = 0;
    std::memcpy(&out, req.data, size);
    return true;
}

bool LogicalProcessor::exec_mmio_write(GuestContext& g, std::uint64_t gpa, unsigned size,
                                       std::uint64_t value) {
    const std::uint64_t start = rip(g);
    if (is_apic_gpa(g, gpa) && (secondary() & vmcs::kSecondaryVirtualizeApicAccesses))
        return apic_access_mmio(g, static_cast<std::uint32_t>(gpa - kGuestApicBase), size, true,
                                value, start, kLenMovMmio);
    if (is_apic_gpa(g, gpa)) {
        g.mmio = DecodedMmio{true, true, gpa, size, value};
        g.vmcs.set_exit_info(Field::GuestPhysicalAddress, gpa);
        vm_exit(g, static_cast<std::uint32_t>(ExitReason::EptMisconfig), 0, 0, kLenMovMmio);
        return false;
    }
    model::MemRequest req;
    req.op = model::MemOp::Write;
    req.address = gpa;
    req.size = size;
    std::memcpy(req.data, &value, size);
    return exec_memory(g, req);
}

bool LogicalProcessor::exec_memory(GuestContext& g, model::MemRequest& req) {
    req.address = translate(g, req.address);
    m_port.access(req);
    advance_rip(g, 4);
    return true;
}

double LogicalProcessor::spin_period(bool pause) const {
    // The loop period: PAUSE, or a load and a branch for a tight loop.
    return pause ? costs()[Cost::GuestPause] : costs()[Cost::MemL1Hit] + costs()[Cost::GuestInstruction];
}

void LogicalProcessor::catch_up_with_store(GuestContext& g, const sc_core::sc_time& stored, bool pause) {
    // Decoupled mode: the writer of the watched line ran ahead of SystemC time, so its
    // store takes effect later than this processor's present. The loop keeps iterating
    // until then and observes the value at its first iteration boundary after the store
    // (what exact mode sees). In exact mode every store is already in the past.
    if (stored <= sc_core::sc_time_stamp()) return;
    const double due = clock().to_cycles(stored) - now_cycles();
    if (due <= 0.0) return;
    const double period = spin_period(pause);
    const double iterations = std::ceil(due / period);
    charge_cycles(iterations * period);
    g.instructions += static_cast<std::uint64_t>(iterations) * 2;
}

void LogicalProcessor::exec_spin(GuestContext& g, const std::function<bool()>& done,
                                 std::optional<std::uint64_t> watch_gpa, bool pause, bool done_never) {
    // A PAUSE loop: each iteration polls `done()` and executes PAUSE; interrupts are
    // taken at the loop's instruction boundaries. Instead of simulating every
    // iteration, the loop sleeps until something it could observe changes (the watched
    // line is written, or an interrupt arrives) and then resumes at the next iteration
    // boundary, as the real loop would.
    for (;;) {
        LogicalProcessor& lp = *g.lp;  // the vCPU may have moved after an exit
        if (!lp.event_window(g)) continue;
        // done() may make several timed loads: a store to the watched line between them
        // must not be slept through, so compare the line's store count around it.
        model::MemoryTarget& memory = lp.m_platform.memory_target();
        std::uint64_t watch_hpa = 0, writes_before = 0;
        sc_core::sc_event* line_written = nullptr;
        if (watch_gpa) {
            watch_hpa = lp.translate(g, *watch_gpa);
            line_written = &memory.line_written_event(watch_hpa);  // counting starts here
            writes_before = memory.line_write_count(watch_hpa);
        }
        if (line_written) lp.catch_up_with_store(g, memory.line_store_time(watch_hpa), pause);
        if (done()) return;
        LogicalProcessor& cur = *g.lp;
        if (line_written && memory.line_write_count(watch_hpa) != writes_before) continue;
        const double period = cur.spin_period(pause);
        // Inside an STI / MOV-SS blocking window (the loop right after STI), one iteration
        // retires first: that ends the window, and an interrupt held back by it is taken
        // at the next boundary without waiting for a new one (SDM 6.8.3).
        if (g.vmcs.hw_read(Field::GuestInterruptibilityInfo) &
            (vmcs::kBlockingBySti | vmcs::kBlockingByMovSs)) {
            cur.charge_cycles(period);
            cur.advance_rip(g, pause ? kLenPause : kLenStraightLine);
            continue;
        }
        const double t0 = cur.now_cycles();
        if (!watch_gpa && !done_never) {
            // done() depends on something this loop cannot watch (time): one iteration.
            cur.charge_cycles(period);
            g.instructions += 2;
            continue;
        }
        if (line_written) {
            memory.begin_wait(watch_hpa);
            cur.wait_for(cur.line_or_interrupt(watch_hpa & ~(model::kCacheLineSize - 1), *line_written));
            memory.end_wait(watch_hpa);
        } else {
            cur.wait_for(cur.m_apic->interrupt_event());
        }
        // Resume at the next iteration boundary after the wake-up.
        const double elapsed = cur.now_cycles() - t0;
        const double iterations = std::ceil(elapsed / period);
        cur.charge_cycles(iterations * period - elapsed);
        g.instructions += static_cast<std::uint64_t>(iterations) * 2;
    }
}

// ====================================================================================
// Root-mode API: physical APIC and host interrupts
// ====================================================================================
void LogicalProcessor::host_send_ipi(std::uint32_t destination, std::uint8_t vector,
                                     std::uint32_t icr_extra) {
    sync_point();
    if (m_apic->x2apic_mode()) {
        const auto r = m_apic->wrmsr(kMsrX2apicIcr, (std::uint64_t{destination} << kX2apicIcrDestShift) |
                                                        vector | icr_extra, annotation());
        charge_cycles(r.cycles);
    } else {
        charge_cycles(m_apic->mmio_write(kVapicIcrHi, destination << kXapicIcrDestShift, annotation()).cycles);
        charge_cycles(m_apic->mmio_write(kVapicIcrLo, vector | icr_extra, annotation()).cycles);
    }
}

void LogicalProcessor::set_host_handler(std::uint8_t vector, HostHandler handler) {
    m_host_handlers[vector] = std::move(handler);
}

bool LogicalProcessor::host_interrupt_pending() const { return m_apic->intr_pending(); }

void LogicalProcessor::handle_host_interrupts() {
    while (m_host_if && m_apic->intr_pending()) {
        const std::uint8_t vec = m_apic->acknowledge();
        step(Cost::ApicInterruptAck, "host: acknowledge local APIC", "SDM 10.8", "apic");
        step(Cost::KvmHostIrqEntry, "host: IDT entry", "arch/x86 idtentry", "kvm");
        m_host_if = false;
        if (m_host_handlers[vec]) m_host_handlers[vec](vec);
        m_host_if = true;
        sync_point();
        m_apic->eoi();
        step(Cost::ApicEoi, "host: EOI", "SDM 10.8.5", "apic");
        ++m_stat_host_interrupts;
    }
}

void LogicalProcessor::run_host_handler(std::uint8_t vec) {
    step(Cost::KvmHostIrqEntry, "host: IDT entry (acknowledged on VM exit)", "arch/x86 idtentry", "kvm");
    const bool saved = m_host_if;
    m_host_if = false;
    if (m_host_handlers[vec]) m_host_handlers[vec](vec);
    m_host_if = saved;
    sync_point();
    m_apic->eoi();
    step(Cost::ApicEoi, "host: EOI", "SDM 10.8.5", "apic");
}

void LogicalProcessor::local_irq_enable() {
    m_host_if = true;
    sync_point();
    handle_host_interrupts();
}

void LogicalProcessor::host_wait_for_interrupt(sc_core::sc_event* wake) {
    sync_point();
    if (m_host_if && m_apic->intr_pending()) {
        handle_host_interrupts();
        return;
    }
    if (wake)
        wait_for(m_apic->interrupt_event() | *wake);
    else
        wait_for(m_apic->interrupt_event());
    handle_host_interrupts();
}

}  // namespace vtx::cpu
