#include "vmm/kvm.hpp"

#include <algorithm>
#include <cstring>

#include "apic/destination.hpp"
#include "apic/icr.hpp"
#include "apic/registers.hpp"
#include "cpu/virtual_apic.hpp"
#include "model/error.hpp"
#include "model/parse.hpp"
#include "model/rng.hpp"
#include "model/x86.hpp"
#include "pid/descriptor.hpp"
#include "pid/pid_table.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/msr_bitmap.hpp"
#include "vmcs/exit_info.hpp"

namespace vtx::vmm {

using cpu::LogicalProcessor;
using model::Cost;
using vmcs::ExitReason;
using vmcs::Field;

namespace {
constexpr std::uint32_t kMsrX2apicFirst = 0x800, kMsrX2apicLast = 0x8FF;
constexpr std::uint32_t kMsrX2apicTpr = 0x808, kMsrX2apicEoi = 0x80B, kMsrX2apicIcr = 0x830,
                        kMsrX2apicTmcct = 0x839, kMsrX2apicSelfIpi = 0x83F;
constexpr std::uint32_t kIcrBusy = 1u << 12;             // delivery status
constexpr std::uint32_t kX2apicBroadcast = 0xFFFFFFFF;
constexpr unsigned kApicVersion = 0x50014;                 // version 0x14, max LVT 5
constexpr std::uint32_t kApicDfrResetFlat = 0xFFFFFFFF;     // DFR after reset: flat model (APIC_DFR_FLAT)
constexpr std::uint32_t kLvtMaskedReset = 1u << 16;        // an LVT entry after reset: masked
constexpr std::uint32_t kApicLdrMask = 0xFF000000;         // APIC_LDR_MASK: the xAPIC logical ID
constexpr std::uint32_t kApicDfrReservedOnes = 0x0FFFFFFF; // DFR bits 27:0 read as ones
constexpr std::uint32_t kApicSvrWritable = 0x3FF;          // vector, APIC enable, focus (no directed EOI)
constexpr std::uint32_t kApicTimerDivideWritable = 0xB;    // divide configuration bits 3, 1:0
constexpr std::uint32_t kSvrEnabledReset = 0x1FF;          // vtxsim's reset SVR: enabled, spurious vector FFH
constexpr std::uint8_t kPriorityClassMask = 0xF0;
constexpr std::uint64_t kMigrationStressSeed = 0x6D696772617465;  // "migrate": kvm.migrate_every's choices
bool parse_bool(const std::string& v, bool& out) {
    if (v == "on" || v == "1" || v == "true" || v == "yes" || v == "Y") return out = true, true;
    if (v == "off" || v == "0" || v == "false" || v == "no" || v == "N") return out = false, true;
    return false;
}
}  // namespace

// ====================================================================================
// Knobs
// ====================================================================================
void KvmParams::set(const std::string& name, const std::string& value, const std::string& where) {
    auto bad = [&](const char* what) {
        throw model::ConfigError(where + ": kvm." + name + " = \"" + value + "\": " + what);
    };
    bool b = false;
    if (name == "enable_apicv" || name == "enable_ipiv" || name == "x2apic_icr_fastpath" || name == "host_x2apic") {
        if (!parse_bool(value, b)) bad("expected on or off");
        (name == "enable_apicv"   ? enable_apicv
         : name == "enable_ipiv"  ? enable_ipiv
         : name == "host_x2apic"  ? host_x2apic
                                  : x2apic_icr_fastpath) = b;
    } else if (name == "sched_slice_cycles") {
        const auto n = model::parse_u64(value);
        if (!n || *n < 1000) bad("expected a number of cycles >= 1000");
        sched_slice_cycles = *n;
    } else if (name == "halt_poll_ns") {
        const auto n = model::parse_u64(value);
        if (!n || *n > 1000000000) bad("expected a number of ns 0..1e9 (0: no halt polling)");
        halt_poll_ns = *n;
    } else if (name == "migrate_every") {
        const auto n = model::parse_u64(value);
        if (!n || (*n != 0 && *n < 10000) || *n > 1000000000000ull)
            bad("expected 0 (off) or a number of cycles 10000..1e12 between migrations");
        migrate_every = *n;
    } else if (name == "host_idle") {
        if (value == "poll")
            host_idle = HostIdle::Poll;
        else if (value == "c1")
            host_idle = HostIdle::C1;
        else if (value == "c1e")
            host_idle = HostIdle::C1e;
        else
            bad("expected poll, c1 or c1e");
    } else if (name == "mitigations") {
        if (value == "auto")
            mitigations = true;
        else if (value == "off")
            mitigations = false;
        else
            bad("expected auto or off (the mitigations= boot parameter)");
    } else if (name == "host_kernel") {
        if (value == "5.13")
            host_kernel = HostKernel::V5_13;
        else if (value == "6.0")
            host_kernel = HostKernel::V6_0;
        else if (value == "6.9")
            host_kernel = HostKernel::V6_9;
        else
            bad("expected 5.13, 6.0 or 6.9");
    } else if (name == "inject_bug") {
        if (value == "none")
            inject_bug = InjectedBug::None;
        else if (value == "no_wakeup_vector")
            inject_bug = InjectedBug::NoWakeupVector;
        else if (value == "no_on_recheck")
            inject_bug = InjectedBug::NoOnRecheck;
        else if (value == "no_pir_sync")
            inject_bug = InjectedBug::NoPirSync;
        else if (value == "stale_phys_map")
            inject_bug = InjectedBug::StalePhysMap;
        else if (value == "no_sn_on_preempt")
            inject_bug = InjectedBug::NoSnOnPreempt;
        else if (value == "pid_before_init")
            inject_bug = InjectedBug::PidBeforeInit;
        else if (value == "ipiv_after_id_change")
            inject_bug = InjectedBug::IpivAfterIdChange;
        else if (value == "stale_ndst")
            inject_bug = InjectedBug::StaleNdst;
        else
            bad("expected none, no_wakeup_vector, no_on_recheck, no_pir_sync, stale_phys_map, no_sn_on_preempt, "
                "pid_before_init, ipiv_after_id_change or stale_ndst");
    } else if (name == "max_vcpu_ids") {
        const auto n = model::parse_u64(value);
        if (!n || *n == 0 || *n > 4096) bad("expected an integer 1..4096 (KVM_MAX_VCPU_IDS)");
        max_vcpu_ids = static_cast<std::uint32_t>(*n);
    } else {
        throw model::ConfigError(where + ": unknown VMM knob \"kvm." + name +
                                 "\" (known: enable_apicv, enable_ipiv, x2apic_icr_fastpath, max_vcpu_ids, sched_slice_cycles, host_x2apic, host_idle, halt_poll_ns, mitigations, host_kernel, inject_bug)");
    }
}

std::vector<std::array<std::string, 3>> KvmParams::describe() const {
    auto onoff = [](bool b) { return std::string(b ? "on" : "off"); };
    return {
        {"kvm.enable_apicv", onoff(enable_apicv), "APIC virtualization (TPR shadow, APIC-register virtualization, virtual-interrupt delivery, posted interrupts)"},
        {"kvm.enable_ipiv", onoff(enable_ipiv), "IPI virtualization (needs APICv and a CPU profile with IPIv)"},
        {"kvm.x2apic_icr_fastpath", onoff(x2apic_icr_fastpath), "handle unicast x2APIC ICR writes in the IRQs-off fastpath"},
        {"kvm.max_vcpu_ids", std::to_string(max_vcpu_ids), "KVM_CAP_MAX_VCPU_ID: PID-pointer table entries, last PID-pointer index + 1"},
        {"kvm.sched_slice_cycles", std::to_string(sched_slice_cycles), "host scheduler time slice when vCPUs share a physical CPU"},
        {"kvm.host_x2apic", onoff(host_x2apic), "host kernel's local APIC mode: x2APIC, or xAPIC (nox2apic); decides the PID's NDST format"},
        {"kvm.halt_poll_ns", std::to_string(halt_poll_ns), "KVM's halt polling: the most a halting vCPU polls before it blocks (0: off)"},
        {"kvm.migrate_every", std::to_string(migrate_every),
         "host stress: the VMM's userspace moves a vCPU thread to another CPU every N cycles (0: off)"},
        {"kvm.host_idle", host_idle == HostIdle::Poll ? "poll" : host_idle == HostIdle::C1 ? "c1" : "c1e",
         "idle host CPUs: poll (idle=poll), or MWAIT in C1 / C1E (a remote wakeup is a reschedule IPI; exit latency)"},
        {"kvm.mitigations", mitigations ? "auto" : "off",
         "host speculative-execution mitigations (mitigations= boot parameter): the SPEC_CTRL switch, IBPB on vCPU switch, and by host_kernel the PBRSB guard and BHI"},
        {"kvm.host_kernel", host_kernel == HostKernel::V5_13 ? "5.13" : host_kernel == HostKernel::V6_0 ? "6.0" : "6.9",
         "the host kernel whose VM-exit mitigation code runs: 5.13 (the training runs), 6.0 (+ LFENCE, PBRSB guard), 6.9 (+ BHI)"},
        {"kvm.inject_bug",
         inject_bug == InjectedBug::None             ? "none"
         : inject_bug == InjectedBug::NoWakeupVector ? "no_wakeup_vector"
         : inject_bug == InjectedBug::NoOnRecheck    ? "no_on_recheck"
         : inject_bug == InjectedBug::NoPirSync      ? "no_pir_sync"
         : inject_bug == InjectedBug::StalePhysMap   ? "stale_phys_map"
         : inject_bug == InjectedBug::NoSnOnPreempt  ? "no_sn_on_preempt"
         : inject_bug == InjectedBug::PidBeforeInit  ? "pid_before_init"
         : inject_bug == InjectedBug::IpivAfterIdChange ? "ipiv_after_id_change"
                                                        : "stale_ndst",
         "a VMM bug on purpose, for the protocol checker (run --check): no_wakeup_vector, no_on_recheck, no_pir_sync, "
         "stale_phys_map, no_sn_on_preempt, pid_before_init, ipiv_after_id_change, stale_ndst"},
    };
}

// ====================================================================================
// VM and vCPU objects
// ====================================================================================
Vcpu::Vcpu(Vm& vm, unsigned id, unsigned pcpu)
    : m_vm(vm), m_id(id), m_pcpu(pcpu),
      m_ctx("vm" + std::to_string(vm.m_index) + ".vcpu" + std::to_string(id),
            vm.m_kvm.platform().profile().features) {}

bool Vcpu::apicv_active() const { return m_vm.m_kvm.params().enable_apicv && !m_vm.m_apicv_inhibited; }
bool Vcpu::ipiv_active() const { return m_vm.m_kvm.params().enable_ipiv && apicv_active(); }
std::uint32_t Vcpu::apic_id() const {
    std::uint32_t id = 0;
    m_vm.m_kvm.platform().memory().peek(m_vapic + cpu::kVapicId, &id, sizeof id);
    return m_vm.m_x2apic ? id : id >> 24;
}
std::uint64_t Vcpu::exits(std::uint16_t reason) const {
    auto it = m_exits.find(reason);
    return it == m_exits.end() ? 0 : it->second;
}

Vm::Vm(Kvm& kvm, unsigned index, bool x2apic, std::uint64_t memory_bytes)
    : m_kvm(kvm), m_index(index), m_x2apic(x2apic) {
    auto& mem = kvm.platform().memory();
    m_memory.size = memory_bytes;
    m_memory.host_base = mem.allocate(memory_bytes, model::kPageSize);
    m_apic_access_page = mem.allocate(model::kPageSize, model::kPageSize);
}

std::uint64_t Vm::alloc_guest(std::uint64_t bytes, std::uint64_t align) {
    const std::uint64_t gpa = (m_next_gpa + align - 1) & ~(align - 1);
    if (gpa + bytes > m_memory.size)
        throw model::ConfigError("VM " + std::to_string(m_index) + ": guest memory exhausted");
    m_next_gpa = gpa + bytes;
    return gpa;
}

void Vm::recalculate_apic_map() {
    m_phys_map.clear();
    for (auto& v : m_vcpus) {
        const std::uint32_t id = v->apic_id();
        v->m_map_apic_id = id;
        if (id >= m_phys_map.size()) m_phys_map.resize(std::size_t{id} + 1, nullptr);
        if (!m_phys_map[id]) m_phys_map[id] = v.get();
    }
}

void Vm::recalculate_logical_map() {
    m_logical_dirty = false;
    m_logical_usable = true;
    m_logical_model = LogicalModel::None;
    m_logical_map.clear();
    // kvm_recalculate_logical_map, per vCPU: software-disabled APICs and LDR 0 take no part.
    for (auto& v : m_vcpus) {
        cpu::VirtualApicPage page(m_kvm.platform().memory(), v->m_vapic);
        if (!(page.read32(cpu::kVapicSvr) & apic::kSvrApicSoftwareEnable)) continue;
        const std::uint32_t ldr = page.read32(cpu::kVapicLdr);
        if (ldr == 0) continue;
        LogicalModel model;
        std::uint32_t cluster, members;
        if (m_x2apic) {
            model = LogicalModel::X2apicCluster;
            cluster = ldr >> 16;
            members = ldr & 0xFFFF;
        } else if (page.read32(cpu::kVapicDfr) == kApicDfrResetFlat) {  // APIC_DFR_FLAT
            model = LogicalModel::XapicFlat;
            cluster = 0;
            members = ldr >> 24;
        } else {
            model = LogicalModel::XapicCluster;
            cluster = ldr >> 28;
            members = (ldr >> 24) & 0xF;
        }
        if (m_logical_model != LogicalModel::None && model != m_logical_model) {
            m_logical_usable = false;  // mixed logical models: KVM_APIC_MODE_MAP_DISABLED
            return;
        }
        m_logical_model = model;
        if (members == 0) continue;
        if (members & (members - 1)) {
            m_logical_usable = false;  // several bits in one logical ID
            return;
        }
        const unsigned bit = static_cast<unsigned>(__builtin_ctz(members));
        if (cluster >= m_logical_map.size()) m_logical_map.resize(std::size_t{cluster} + 1, {});
        Vcpu*& slot = m_logical_map[cluster][bit];
        if (slot) {
            m_logical_usable = false;  // two vCPUs with one logical ID
            return;
        }
        slot = v.get();
    }
}

bool Vm::logical_destinations(const apic::InterruptMessage& msg, std::vector<Vcpu*>& out) {
    if (m_logical_dirty) recalculate_logical_map();
    if (!m_logical_usable) return false;
    std::uint32_t cluster = 0, mask = 0;
    switch (m_logical_model) {
        case LogicalModel::None: return true;  // no vCPU has a logical ID: nobody matches
        case LogicalModel::X2apicCluster: cluster = msg.destination >> 16, mask = msg.destination & 0xFFFF; break;
        case LogicalModel::XapicFlat: mask = msg.destination & 0xFF; break;
        case LogicalModel::XapicCluster:
            cluster = (msg.destination >> 4) & 0xF, mask = msg.destination & 0xF;
            if (cluster == 0xF) return false;  // cluster 15 addresses every cluster
            break;
    }
    if (cluster >= m_logical_map.size()) return true;
    for (; mask; mask &= mask - 1)
        if (Vcpu* v = m_logical_map[cluster][static_cast<unsigned>(__builtin_ctz(mask))]) out.push_back(v);
    return true;
}

Vcpu& Vm::create_vcpu(unsigned id, unsigned pcpu, bool start_runnable) {
    const KvmParams& p = m_kvm.params();
    if (id >= p.max_vcpu_ids)
        throw model::ConfigError("vCPU ID " + std::to_string(id) + " is not below kvm.max_vcpu_ids (" +
                                 std::to_string(p.max_vcpu_ids) + ")");
    if (pcpu >= m_kvm.platform().cpu_count())
        throw model::ConfigError("vCPU " + std::to_string(id) + ": physical CPU " + std::to_string(pcpu) +
                                 " does not exist (" + std::to_string(m_kvm.platform().cpu_count()) + " CPUs)");
    if (id < m_by_id.size() && m_by_id[id])
        throw model::ConfigError("vCPU ID " + std::to_string(id) + " exists already");
    auto& mem = m_kvm.platform().memory();
    // vmx_vcpu_precreate -> vmx_alloc_ipiv_pid_table: zeroed pages for max_vcpu_ids entries.
    if (!m_pid_table && m_kvm.params().enable_ipiv)
        m_pid_table = mem.allocate(pid::table_allocation_bytes(p.max_vcpu_ids), model::kPageSize);
    auto v = std::make_unique<Vcpu>(*this, id, pcpu);
    v->m_vapic = mem.allocate(model::kPageSize, model::kPageSize);
    v->m_pi_desc = mem.allocate(pid::kPidBytes, pid::kPidAlignment);
    // __vmx_vcpu_reset, before the PID-pointer table entry below: NV is always the
    // posted-interrupt or the wakeup vector, and SN stays set until the first vcpu_load, so
    // that an IPI virtualized before then only sets its PIR bit.
    if (p.inject_bug != InjectedBug::PidBeforeInit)
        mem.poke64(v->m_pi_desc + pid::kPidNotificationInfoOffset,
                   pid::NotificationInfo{}.with_nv(kPostedIntrVector).with_sn(true).raw);
    // Reset state of the local APIC registers (the lapic page).
    const std::uint32_t id_reg = m_x2apic ? id : id << 24;
    mem.poke(v->m_vapic + cpu::kVapicId, &id_reg, 4);
    mem.poke(v->m_vapic + cpu::kVapicVersion, &kApicVersion, 4);
    if (m_x2apic) {
        const std::uint32_t ldr = ((id >> 4) << 16) | (1u << (id & 0xF));
        mem.poke(v->m_vapic + cpu::kVapicLdr, &ldr, 4);
    }
    mem.poke(v->m_vapic + cpu::kVapicSvr, &kSvrEnabledReset, 4);
    if (!m_x2apic) mem.poke(v->m_vapic + cpu::kVapicDfr, &kApicDfrResetFlat, 4);
    // vmx_vcpu_create: pid_table[vcpu_id] = __pa(pi_desc) | PID_TABLE_ENTRY_VALID.
    if (m_pid_table) {
        model::DirectMemoryPort port(mem, model::kDeviceAgent);
        pid::PidPointerTable(port, m_pid_table, p.max_vcpu_ids).install(id, v->m_pi_desc);
    }
    cpu::GuestContext& ctx = v->m_ctx;
    ctx.memory_map = m_memory;
    ctx.code = [this](std::uint64_t linear) -> cpu::GuestProgram {
        auto it = m_code.find(linear);
        return it == m_code.end() ? cpu::GuestProgram{} : it->second;
    };
    m_kvm.platform().register_vmcs(ctx);
    v->m_mp_state = start_runnable ? MpState::Runnable : MpState::Uninitialized;
    if (id >= m_by_id.size()) m_by_id.resize(std::size_t{id} + 1, nullptr);
    m_by_id[id] = v.get();
    m_vcpus.push_back(std::move(v));
    // kvm_recalculate_apic_map, incrementally: a new vCPU takes a free APIC ID slot.
    const std::uint32_t apic_id = m_vcpus.back()->apic_id();
    m_vcpus.back()->m_map_apic_id = apic_id;
    if (apic_id >= m_phys_map.size()) m_phys_map.resize(std::size_t{apic_id} + 1, nullptr);
    if (!m_phys_map[apic_id]) m_phys_map[apic_id] = m_vcpus.back().get();
    m_logical_dirty = true;
    return *m_vcpus.back();
}

void Vm::inhibit_apicv(const char* reason) {
    if (m_apicv_inhibited) return;
    m_apicv_inhibited = true;
    ++m_kvm.platform().stats().counter(std::string("kvm.apicv_inhibit.") + reason, "count",
                                       "APICv inhibited for the VM");
    for (auto& v : m_vcpus) {
        v->m_apicv_refresh = true;  // KVM_REQ_APICV_UPDATE
        v->m_req_event = true;
    }
}

Kvm::Kvm(cpu::Platform& platform, KvmParams params) : m_platform(platform), m_params(params) {
    const auto& f = platform.profile().features;
    if (m_params.enable_ipiv && !f.ipi_virtualization)
        throw model::ConfigError("kvm.enable_ipiv=on needs a CPU with IPI virtualization; profile \"" +
                                 platform.profile().name + "\" has none (use kvm.enable_ipiv=off)");
    if (m_params.enable_ipiv && !m_params.enable_apicv)
        throw model::ConfigError("kvm.enable_ipiv=on needs kvm.enable_apicv=on (IPIv is used only with APICv)");
    m_wakeup_list.resize(platform.cpu_count());
    m_remote_wakeups.resize(platform.cpu_count());
    m_vmxon.assign(platform.cpu_count(), false);
    const std::optional<Cost> idle_exit = m_params.host_idle == HostIdle::C1    ? std::optional<Cost>(Cost::HostIdleExitC1)
                                          : m_params.host_idle == HostIdle::C1e ? std::optional<Cost>(Cost::HostIdleExitC1e)
                                                                                : std::nullopt;
    for (unsigned c = 0; c < platform.cpu_count(); ++c)
        m_sched.push_back(std::make_unique<HostScheduler>(platform.cpu(c), static_cast<double>(m_params.sched_slice_cycles),
                                                          idle_exit));
    for (unsigned c = 0; c < platform.cpu_count(); ++c) {
        LogicalProcessor& p = platform.cpu(c);
        // sysvec_kvm_posted_intr_ipi: acknowledge only; the PIR is synced at the next entry.
        p.set_host_handler(kPostedIntrVector, [&p](std::uint8_t) {
            p.step(Cost::KvmPostedIntrIpiHandler, "sysvec_kvm_posted_intr_ipi", "arch/x86/kernel/irq.c", "kvm");
        });
        p.set_host_handler(kPostedIntrWakeupVector, [this, c](std::uint8_t) { pi_wakeup_handler(c); });
        p.set_host_handler(kRescheduleVector, [this, c](std::uint8_t) { scheduler_ipi(c); });
        p.set_host_handler(kCallFunctionSingleVector, [&p](std::uint8_t) {
            p.step(Cost::HostCallFunctionSingle, "sysvec_call_function_single", "kernel/smp.c", "kvm");
        });
    }
}

Vm& Kvm::create_vm(bool x2apic, std::uint64_t memory_bytes) {
    m_vms.push_back(std::make_unique<Vm>(*this, static_cast<unsigned>(m_vms.size()), x2apic, memory_bytes));
    return *m_vms.back();
}

std::uint64_t Kvm::exits(std::uint16_t reason) const {
    std::uint64_t n = 0;
    for (const auto& vm : m_vms)
        for (const auto& v : vm->m_vcpus) n += v->exits(reason);
    return n;
}

void Kvm::start() {
    m_pinned.assign(m_platform.cpu_count(), 0);
    for (auto& vm : m_vms)
        for (auto& v : vm->m_vcpus) ++m_pinned[v->m_pcpu];
    for (unsigned c = 0; c < m_platform.cpu_count(); ++c) {
        HostScheduler* s = m_sched[c].get();
        s->set_shared(m_pinned[c] > 1);
        m_platform.cpu(c).set_software([s] { s->idle_loop(); });
    }
    if (m_params.migrate_every > 0 && m_platform.cpu_count() > 1)
        spawn_host_thread(m_platform.cpu_count() - 1, "migration_stressor",
                          [this](HostThreadContext& h) { migration_stressor(h); });
    for (auto& vm : m_vms)
        for (auto& v : vm->m_vcpus) {
            Vcpu* vp = v.get();
            std::string name = vp->m_ctx.name + "_thread";
            for (char& ch : name)
                if (ch == '.') ch = '_';
            sc_core::sc_spawn([this, vp] { model::keep_input_error_kind([&] { vcpu_thread(*vp); }); },
                              sc_core::sc_gen_unique_name(name.c_str()));
        }
}

// ====================================================================================
// VMCS set-up (vmx.c init_vmcs, vmx_refresh_apicv_exec_ctrl, vmx_update_msr_bitmap_x2apic)
// ====================================================================================
void Kvm::init_vmcs(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    Vm& vm = v.vm();
    auto w = [&](Field f, std::uint64_t value) { p.vmwrite(f, value); };
    w(Field::PostedIntrNv, kPostedIntrVector);
    w(Field::PostedIntrDescAddr, v.m_pi_desc);
    w(Field::VirtualApicPageAddr, v.m_vapic);
    w(Field::ApicAccessAddr, vm.m_apic_access_page);
    w(Field::TprThreshold, 0);
    for (Field f : {Field::EoiExitBitmap0, Field::EoiExitBitmap1, Field::EoiExitBitmap2, Field::EoiExitBitmap3})
        w(f, 0);
    if (vm.m_pid_table) {
        w(Field::PidPointerTable, vm.m_pid_table);
        w(Field::LastPidPointerIndex, m_params.max_vcpu_ids - 1);
    }
    const std::uint64_t bitmap = m_platform.memory().allocate(model::kPageSize, model::kPageSize);
    std::vector<std::uint8_t> ones(model::kPageSize, 0xFF);  // intercept everything by default
    m_platform.memory().poke(bitmap, ones.data(), ones.size());
    w(Field::MsrBitmap, bitmap);
    w(Field::VmExitControls, vmcs::kExitDefault1 | vmcs::kExitHostAddressSpaceSize |
                                 vmcs::kExitAcknowledgeInterruptOnExit);
    w(Field::VmEntryControls, vmcs::kEntryDefault1 | vmcs::kEntryIa32eModeGuest);
    w(Field::VmcsLinkPointer, ~std::uint64_t{0});
    // Guest state: the BSP starts at its entry point; APs wait for INIT/SIPI.
    w(Field::GuestRflags, x86::kRflagsReserved1);
    w(Field::GuestCsBase, 0);
    w(Field::GuestRip, v.m_entry);
    w(Field::GuestActivityState, 0);
    w(Field::GuestInterruptibilityInfo, 0);
    w(Field::GuestIntrStatus, 0);
    refresh_apicv_exec_ctrl(v);
    // What-if values for VMCS fields (`--set vmcs.FIELD=VALUE`), written last with VMWRITE,
    // so they get the architectural answer: a VMWRITE error here, an entry failure later.
    for (const auto& [field, value] : m_vmcs_overrides) {
        const vmcs::VmxResult r = p.vmwrite(field, value);
        if (!r.succeeded())
            throw model::ConfigError("--set vmcs." + std::string(vmcs::field_name(field)) + ": VMWRITE failed with " +
                                     (r.status == vmcs::VmxStatus::FailValid
                                          ? "VMfailValid(" + std::to_string(vmcs::error_number(r.error)) + ", " +
                                                std::string(vmcs::vm_instruction_error_name(r.error)) + ")"
                                          : std::string("VMfailInvalid")));
    }
}

void Kvm::refresh_apicv_exec_ctrl(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    const bool apicv = v.apicv_active();
    const bool ipiv = v.ipiv_active();
    std::uint32_t pin = vmcs::kPinDefault1 | vmcs::kPinExternalInterruptExiting | vmcs::kPinNmiExiting |
                        vmcs::kPinVirtualNmis;
    if (apicv) pin |= vmcs::kPinProcessPostedInterrupts;
    std::uint32_t primary = vmcs::kPrimaryDefault1 | vmcs::kPrimaryHltExiting | vmcs::kPrimaryUseTprShadow |
                            vmcs::kPrimaryUseMsrBitmaps | vmcs::kPrimaryActivateSecondaryControls;
    std::uint64_t tertiary = ipiv ? vmcs::kTertiaryIpiVirt : 0;
    if (tertiary) primary |= vmcs::kPrimaryActivateTertiaryControls;
    std::uint32_t secondary = v.vm().x2apic() ? vmcs::kSecondaryVirtualizeX2apicMode
                                              : vmcs::kSecondaryVirtualizeApicAccesses;
    if (apicv) secondary |= vmcs::kSecondaryApicRegisterVirtualization | vmcs::kSecondaryVirtualInterruptDelivery;
    p.vmwrite(Field::PinBasedVmExecControl, pin);
    p.vmwrite(Field::CpuBasedVmExecControl, primary);
    p.vmwrite(Field::SecondaryVmExecControl, secondary);
    if (m_platform.profile().features.tertiary_controls) p.vmwrite(Field::TertiaryVmExecControl, tertiary);
    update_msr_bitmap_x2apic(v);
    v.m_apicv_refresh = false;
}

void Kvm::update_msr_bitmap_x2apic(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    const std::uint64_t bitmap = p.current_vmcs()->hw_read(Field::MsrBitmap);
    auto& mem = m_platform.memory();
    auto set_intercept_bit = [&](std::uint32_t msr, bool write, bool intercept) {
        const vmcs::MsrBitmapBit where = *vmcs::msr_bitmap_bit(msr, write);
        std::uint8_t b;
        mem.peek(bitmap + where.byte, &b, 1);
        b = intercept ? (b | (1u << where.bit)) : (b & ~(1u << where.bit));
        mem.poke(bitmap + where.byte, &b, 1);
    };
    const bool x2apic_apicv = v.vm().x2apic() && v.apicv_active();
    for (std::uint32_t msr = kMsrX2apicFirst; msr <= kMsrX2apicLast; ++msr) {
        set_intercept_bit(msr, false, !x2apic_apicv || msr == kMsrX2apicTmcct);
        set_intercept_bit(msr, true, true);
    }
    if (v.vm().x2apic()) {
        // "TPR reads and writes can be virtualized even if virtual interrupt delivery is
        // not in use": with virtualize x2APIC mode the TPR MSR is never intercepted.
        set_intercept_bit(kMsrX2apicTpr, false, false);
        set_intercept_bit(kMsrX2apicTpr, true, false);
    }
    // The user-interrupt MSRs pass through on a CPU with user interrupts (the guest's
    // UINTR state is switched with the vCPU, as XSAVES state: docs/vmm.md "User interrupts").
    if (m_platform.profile().features.uintr)
        for (std::uint32_t msr = x86::kMsrUintrRr; msr <= x86::kMsrUintrTt; ++msr) {
            set_intercept_bit(msr, false, false);
            set_intercept_bit(msr, true, false);
        }
    if (x2apic_apicv) {
        set_intercept_bit(kMsrX2apicEoi, true, false);
        set_intercept_bit(kMsrX2apicSelfIpi, true, false);
        // The ICR stays intercepted unless IPIv is active (vmx.c vmx_update_msr_bitmap_x2apic).
        set_intercept_bit(kMsrX2apicIcr, true, !v.ipiv_active());
        set_intercept_bit(kMsrX2apicIcr, false, !v.ipiv_active());
    }
}

// ====================================================================================
// The vCPU thread (x86.c vcpu_run) and vcpu_enter_guest
// ====================================================================================
void Kvm::vcpu_thread(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    m_sched[v.m_pcpu]->acquire(&v);
    hardware_enable(v.m_pcpu);
    // vmx_vcpu_create / first vcpu_load: VMCLEAR, VMPTRLD, init_vmcs, then vmx_vcpu_pi_load.
    p.vmclear(v.m_ctx.vmcs_address);
    p.vmptrld(v.m_ctx.vmcs_address);
    init_vmcs(v);
    vmx_vcpu_pi_load(v);
    for (;;) {
        // (The vCPU's CPU, and so its scheduler, may change: a migration from userspace.)
        if (!v.m_userspace_work.empty()) exit_to_userspace(v);
        if (v.m_mp_state == MpState::Runnable) {
            if (m_sched[v.m_pcpu]->need_resched()) {
                // Preempted (the end of its slice, a waking host task): vcpu_put (SN := 1),
                // then back in.
                vmx_vcpu_pi_put(v, true);
                m_sched[v.m_pcpu]->yield(&v);
                vcpu_load(v);
            }
            if (vcpu_enter_guest(v) == 0) break;
        } else {
            if (v.m_mp_state == MpState::Halted)
                kvm_vcpu_halt(v);
            else
                kvm_vcpu_block(v);
            kvm_apic_accept_events(v);
            // vcpu_run's loop passes cond_resched: a vCPU that stays unable to run although
            // kvm_vcpu_block returned (an NMI pending in INIT_RECEIVED counts as an event, as
            // in KVM) spins, and simulated time must move on with it.
            if (v.m_mp_state != MpState::Runnable) lp(v).sync();
        }
    }
    m_sched[v.m_pcpu]->release(&v);
    if (on_guest_finished) on_guest_finished(v);
}

void Kvm::hardware_enable(unsigned pcpu) {
    // hardware_enable: VMXON once per CPU, by the first thread of the VMM that runs there.
    if (m_vmxon[pcpu]) return;
    m_platform.cpu(pcpu).vmxon(m_platform.memory().allocate(model::kPageSize, model::kPageSize));
    m_vmxon[pcpu] = true;
}

void Kvm::migration_stressor(HostThreadContext& h) {
    // A userspace thread (on the last CPU, where it waits for its turn like any thread) that
    // moves a vCPU thread every migrate_every cycles; the choices come from a fixed stream.
    std::vector<Vcpu*> all;
    for (auto& vm : m_vms)
        for (auto& v : vm->m_vcpus) all.push_back(v.get());
    if (all.empty()) return;
    model::SplitMix64 rng(kMigrationStressSeed);
    const auto cpus = static_cast<std::uint64_t>(m_platform.cpu_count());
    for (double at = static_cast<double>(m_params.migrate_every);; at += static_cast<double>(m_params.migrate_every)) {
        host_sleep_until(h, at);
        Vcpu& v = *all[rng.below(all.size())];
        const auto to = static_cast<unsigned>((v.m_pcpu + 1 + rng.below(cpus - 1)) % cpus);
        const bool pending = v.m_migrate_to.has_value();
        v.m_migrate_to = to;  // the latest affinity wins (see Vcpu::m_migrate_to)
        if (pending) continue;
        host_run_on_vcpu(h, v, [this](Vcpu& w) {
            const unsigned dest = *w.m_migrate_to;
            w.m_migrate_to.reset();
            userspace_migrate(w, dest);
        });
    }
}

void Kvm::userspace_migrate(Vcpu& v, unsigned pcpu) {
    if (pcpu >= m_sched.size())
        throw model::ConfigError(v.m_ctx.name + ": migrate to physical CPU " + std::to_string(pcpu) + ", which does not exist");
    if (v.guest_mode())
        throw model::ConfigError(v.m_ctx.name + ": migrating a vCPU that runs a nested guest is not modelled");
    if (pcpu == v.m_pcpu) return;
    LogicalProcessor& from = lp(v);
    // sched_setaffinity: the thread moves at its next schedule(); on the new CPU,
    // vmx_vcpu_load_vmcs finds the VMCS loaded elsewhere and has the old CPU VMCLEAR it
    // (loaded_vmcs_clear, an IPI to it: modelled as done there), so the next entry is a
    // VMLAUNCH; then VMPTRLD here (vcpu_load), and vmx_vcpu_pi_load points NDST at this CPU.
    from.step(Cost::HostContextSwitch, "sched_setaffinity: the vCPU thread migrates", "kernel/sched/core.c", "kvm");
    from.vmclear(v.m_ctx.vmcs_address);
    v.m_launched = false;
    // The new CPU gets a second thread: its tick must run again (tick_nohz_dep_set_cpu's IPI,
    // whose handler restarts the slice timer there), or the thread running there would keep
    // it as long as it does not block.
    ++m_pinned[pcpu];
    m_sched[pcpu]->set_shared(m_pinned[pcpu] > 1);
    if (m_pinned[pcpu] > 1) {
        from.step(Cost::KvmSendIpiMask, "tick_nohz_dep_set_cpu: IPI to restart the tick", "kernel/time/tick-sched.c", "kvm");
        from.host_send_ipi(m_platform.cpu(pcpu).apic().apic_id(), kRescheduleVector);
    }
    m_sched[v.m_pcpu]->release(&v);
    --m_pinned[v.m_pcpu];
    m_sched[v.m_pcpu]->set_shared(m_pinned[v.m_pcpu] > 1);
    v.m_pcpu = pcpu;
    v.m_poll_wake.reset();  // the halt-poll wait listened to the old CPU's APIC
    ++m_stat_migrations;
    m_sched[pcpu]->acquire(&v);
    hardware_enable(pcpu);
}

void Kvm::vcpu_load(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    p.step(Cost::KvmVcpuLoadPut, "vcpu_load", "kvm_main.c, vmx.c vmx_vcpu_load", "kvm");
    cpu::GuestContext& loaded = v.loaded_context();  // vmcs02 while L2 is active
    if (p.current_context() != &loaded) {
        p.vmptrld(loaded.vmcs_address);
        // vmx_vcpu_load_vmcs: another VMCS on this CPU, an IBPB (spectre_v2_user).
        if (m_params.mitigations) {
            p.step(Cost::HostIbpb, "IBPB: another vCPU's VMCS on this CPU", "vmx.c vmx_vcpu_load_vmcs", "kvm");
            ++m_stat_ibpbs;
        }
    }
    vmx_vcpu_pi_load(v);
}

void Kvm::vmx_vcpu_pi_put(Vcpu& v, bool preempted) {
    LogicalProcessor& p = lp(v);
    p.step(Cost::KvmVcpuLoadPut, "vcpu_put", "kvm_main.c, posted_intr.c vmx_vcpu_pi_put", "kvm");
    // vmx_vcpu_pi_put: a preempted vCPU gets its notifications suppressed, when posted
    // interrupts can target it while it does not run.
    if (preempted) {
        v.m_preempted = true;
        v.m_preempted_at = p.now_cycles();
    }
    if (preempted && vmx_needs_pi_wakeup(v) && m_params.inject_bug != InjectedBug::NoSnOnPreempt)
        pid::PostedInterruptDescriptor(p.memory(), v.m_pi_desc).set_sn();
}

// ====================================================================================
// Speculative-execution mitigations around VM entry and exit (docs/vmm.md "Mitigations")
// ====================================================================================
std::uint64_t Kvm::host_spec_ctrl() const {
    // spectre_v2_select_mitigation: an eIBRS part keeps IBRS set in the host's base value;
    // since 6.9 (spectre_bhi=on) a CPU with BHI_CTRL also sets BHI_DIS_S. mitigations=off
    // leaves the MSR 0.
    if (!m_params.mitigations) return 0;
    std::uint64_t v = kSpecCtrlIbrs;
    if (m_params.host_kernel >= HostKernel::V6_9 && m_platform.profile().features.bhi_ctrl) v |= kSpecCtrlBhiDisS;
    return v;
}

void Kvm::spec_ctrl_before_entry(Vcpu& v) {
    // x86_spec_ctrl_set_guest (5.13, vmx_vcpu_run) / __vmx_vcpu_run (5.19+): the guest's
    // value is loaded only when it differs from the host's.
    if (v.m_vm.m_guest_spec_ctrl != host_spec_ctrl()) {
        lp(v).step(Cost::HostSpecCtrlWrmsr, "SPEC_CTRL := guest value (WRMSR)", "bugs.c x86_virt_spec_ctrl / vmenter.S", "kvm");
        ++m_stat_spec_ctrl_wrmsrs;
    }
}

void Kvm::spec_ctrl_after_exit(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    const std::uint64_t guest = v.m_vm.m_guest_spec_ctrl;
    // A guest that wrote a non-zero value has its writes passed through: read it back.
    if (guest != 0) {
        p.step(Cost::HostSpecCtrlRdmsr, "save the guest's SPEC_CTRL (RDMSR)", "vmx.c vmx_spec_ctrl_restore_host", "kvm");
        ++m_stat_spec_ctrl_rdmsrs;
    }
    if (guest != host_spec_ctrl()) {
        p.step(Cost::HostSpecCtrlWrmsr, "SPEC_CTRL := host value (WRMSR)", "bugs.c x86_spec_ctrl_restore_host / vmx.c", "kvm");
        ++m_stat_spec_ctrl_wrmsrs;
    }
    if (m_params.host_kernel >= HostKernel::V6_0)  // 5.19: barrier_nospec() after the restore
        p.step(Cost::HostSpecCtrlLfence, "LFENCE after the SPEC_CTRL restore", "vmx.c vmx_spec_ctrl_restore_host", "kvm");
    if (!m_params.mitigations) return;
    if (m_params.host_kernel >= HostKernel::V6_0 && m_platform.profile().features.pbrsb_affected) {
        p.step(Cost::HostPbrsbGuard, "PBRSB: unbalanced CALL and LFENCE (RSB_VMEXIT_LITE)", "vmenter.S FILL_RETURN_BUFFER", "kvm");
        ++m_stat_pbrsb_guards;
    }
    if (m_params.host_kernel >= HostKernel::V6_9 && !m_platform.profile().features.bhi_ctrl) {
        p.step(Cost::HostBhbClearLoop, "BHI: clear_bhb_loop", "vmenter.S CLEAR_BRANCH_HISTORY_VMEXIT", "kvm");
        ++m_stat_bhb_clears;
    }
}

int Kvm::vcpu_enter_guest(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    p.step(Cost::KvmEnterGuestPrologue, "vcpu_enter_guest: requests, IRQs off, IN_GUEST_MODE",
           "x86.c vcpu_enter_guest", "kvm");
    if (v.m_apicv_refresh && !v.guest_mode()) refresh_apicv_exec_ctrl(v);  // vmcs01 only
    kvm_apic_accept_events(v);
    if (v.m_mp_state != MpState::Runnable) return 1;
    if (v.guest_mode()) return nested_vcpu_run_l2(v);  // L2 on vmcs02 (vmm/nested.cpp)
    // Without APICv, interrupts posted to the PIR (before an APICv inhibit, or by a
    // sender still running with IPIv) are moved to the IRR and injected like any other.
    if (!v.apicv_active() && sync_pir_to_irr(v)) v.m_req_event = true;
    // A queued exception first, then NMIs (they rank above interrupts); each occupies the
    // entry's injection, and what waits behind it keeps KVM_REQ_EVENT for the next entry.
    const bool exception_injected = v.m_pending_gp;
    if (exception_injected) inject_pending_exception(v);
    const bool nmi_injected = !exception_injected && v.m_nmi_pending && inject_pending_nmi(v);
    if (v.m_req_event && !v.apicv_active() && !nmi_injected && !exception_injected) inject_pending_interrupt(v);
    if (!exception_injected) v.m_req_event = false;
    p.local_irq_disable();
    v.m_mode = VcpuMode::InGuestMode;
    // x86.c: "Assigned devices can use the POSTED_INTR_VECTOR even if APICv is disabled,
    // so do it even if APICv is disabled on this vCPU" (kvm_lapic_enabled only).
    if (v.apicv_active() && m_params.inject_bug != InjectedBug::NoPirSync) sync_pir_to_irr(v);
    p.step(Cost::KvmVmxVcpuRunPre, "vmx_vcpu_run: before VMRESUME", "vmx.c vmx_vcpu_run", "kvm");
    spec_ctrl_before_entry(v);
    const cpu::EntryResult r = v.m_launched ? p.vmresume() : p.vmlaunch();
    spec_ctrl_after_exit(v);
    p.step(Cost::KvmVmxVcpuRunPost, "vmx_vcpu_run: after VM exit", "vmx.c vmx_vcpu_run", "kvm");
    leave_guest_mode(v);
    switch (r.outcome) {
        case cpu::EntryOutcome::GuestFinished:
            p.local_irq_enable();
            return 0;
        case cpu::EntryOutcome::VmFailInvalid:
            entry_failed(v, "VM entry failed (VMfailInvalid)");
        case cpu::EntryOutcome::VmFailValid:
            entry_failed(v, "VM entry failed with VM-instruction error " + std::to_string(vmcs::error_number(r.error)) +
                                ": " + r.failed_check);
        case cpu::EntryOutcome::Exited:
            break;
    }
    v.m_launched = true;
    ++v.m_exits[r.exit.basic()];
    if (r.exit.reason & vmcs::kExitReasonEntryFailure)
        entry_failed(v, "VM entry failed (exit reason " + std::to_string(r.exit.basic()) + "): " + r.failed_check);
    const bool fastpath_handled = handle_exit_irqoff_and_fastpath(v, r.exit);
    p.step(Cost::KvmExitCommon, "exit common path: IRQs on, accounting, SRCU", "x86.c vcpu_enter_guest",
           "kvm");
    p.local_irq_enable();
    if (!fastpath_handled) {
        p.step(Cost::KvmHandleExitDispatch, "vmx_handle_exit: dispatch", "vmx.c __vmx_handle_exit", "kvm");
        handle_exit(v, r.exit);
    }
    return 1;
}

// ====================================================================================
// Exit handling
// ====================================================================================
void Kvm::emulate_x2apic_msr(Vcpu& v, bool write, const char* step_name) {
    LogicalProcessor& p = lp(v);
    cpu::GuestContext& g = v.loaded_context();
    const auto msr = static_cast<std::uint32_t>(g.regs.rcx);
    const bool x2apic_msr = msr >= kMsrX2apicFirst && msr <= kMsrX2apicLast;
    const std::uint32_t offset = (msr - kMsrX2apicFirst) << 4;
    if (write) {
        p.step(Cost::KvmWrmsrSlowPath, step_name, "x86.c", "kvm");
        const std::uint64_t value = (g.regs.rdx << 32) | (g.regs.rax & 0xFFFFFFFFu);
        if (msr == kMsrX2apicIcr) {
            // kvm_x2apic_icr_write: X2APIC_ICR_RESERVED_BITS (31:20, 17:16, 13) -> #GP.
            if (value & apic::kX2ApicIcrReservedBits) return kvm_inject_gp(v);
            kvm_x2apic_icr_write(v, value);
        } else if (x2apic_msr) {
            // kvm_lapic_msr_write: bits 63:32 are reserved in every other register; then
            // kvm_lapic_reg_write refuses what x2APIC mode makes read-only or absent.
            if ((value >> 32) != 0 || !kvm_lapic_reg_write(v, offset, static_cast<std::uint32_t>(value)))
                return kvm_inject_gp(v);
        }
    } else {
        p.step(Cost::KvmApicRegAccess, step_name, "x86.c", "kvm");
        // kvm_lapic_msr_read -> kvm_lapic_reg_read: a register not in the readable mask -> #GP.
        if (x2apic_msr && !x2apic_register_readable(offset)) return kvm_inject_gp(v);
        const std::uint64_t value = !x2apic_msr                    ? 0
                                    : msr == kMsrX2apicIcr ? cpu::VirtualApicPage(m_platform.memory(), v.m_vapic)
                                                                 .read64(cpu::kVapicIcrLo)
                                                           : kvm_lapic_reg_read(v, offset);
        g.regs.rax = value & 0xFFFFFFFFu;
        g.regs.rdx = value >> 32;
    }
    skip_emulated_instruction(v);
}

bool Kvm::x2apic_register_readable(std::uint32_t offset) {
    // kvm_lapic_readable_reg_mask in x2APIC mode: the IDs and version, TPR, PPR, LDR, SVR,
    // ISR/TMR/IRR, ESR, ICR, the LVTs this APIC has (no CMCI: version 14H, max LVT 5), the
    // timer; not ARBPRI, DFR, ICR2 (xAPIC only), EOI or SELF IPI (write-only), nor reserved
    // offsets.
    switch (offset) {
        case cpu::kVapicId: case cpu::kVapicVersion: case cpu::kVapicTpr: case cpu::kVapicPpr:
        case cpu::kVapicLdr: case cpu::kVapicSvr: case cpu::kVapicEsr: case cpu::kVapicIcrLo:
        case cpu::kVapicTimerInitial: case cpu::kVapicTimerCurrent: case cpu::kVapicTimerDivide:
            return true;
        default:
            break;
    }
    if (offset >= cpu::kVapicIsr && offset < cpu::kVapicIrr + 0x80) return true;  // ISR, TMR, IRR
    return offset >= cpu::kVapicLvtTimer && offset <= cpu::kVapicLvtError;
}

void Kvm::kvm_inject_gp(Vcpu& v) {
    // kvm_inject_gp(vcpu, 0): the WRMSR/RDMSR is not skipped; the #GP is injected at the
    // next VM entry (kvm_check_and_inject_events).
    v.m_pending_gp = true;
    ++m_stat_gp_injected;
}

void Kvm::emulate_apic_mmio(Vcpu& v, const char* step_name) {
    lp(v).step(Cost::KvmEmulateInstruction, step_name, "x86.c", "kvm");
    cpu::GuestContext& g = v.loaded_context();
    if (g.mmio.valid) {
        const auto offset = static_cast<std::uint32_t>(g.mmio.gpa - cpu::kGuestApicBase);
        if (g.mmio.write)
            kvm_lapic_reg_write(v, offset, static_cast<std::uint32_t>(g.mmio.value));
        else
            g.mmio.value = kvm_lapic_reg_read(v, offset);
    }
    skip_emulated_instruction(v);
}

void Kvm::skip_emulated_instruction(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    const auto rip = p.vmread(Field::GuestRip).value;
    const auto len = p.vmread(Field::VmExitInstructionLen).value;
    p.vmwrite(Field::GuestRip, rip + len);
    // vmx_set_interrupt_shadow(vcpu, 0): the emulated instruction ends an STI / MOV-SS
    // blocking window, as executing it would have.
    const auto intr = p.vmread(Field::GuestInterruptibilityInfo).value;
    if (vmcs::blocked_by_sti_or_mov_ss(intr))
        p.vmwrite(Field::GuestInterruptibilityInfo,
                  intr & ~std::uint64_t{vmcs::kBlockingBySti | vmcs::kBlockingByMovSs});
}

bool Kvm::handle_exit_irqoff_and_fastpath(Vcpu& v, const cpu::VmExit& e) {
    LogicalProcessor& p = lp(v);
    if (e.basic() == static_cast<std::uint16_t>(ExitReason::ExternalInterrupt)) {
        // handle_external_interrupt_irqoff: run the host handler of the acknowledged vector.
        p.step(Cost::KvmHandleExternalInterrupt, "handle_external_interrupt_irqoff", "vmx.c", "kvm");
        if (e.intr_info & vmcs::kIntrInfoValid) {
            const auto vec = static_cast<std::uint8_t>(e.intr_info & vmcs::kIntrInfoVectorMask);
            p.run_host_handler(vec);
        }
        return false;
    }
    if (e.basic() == static_cast<std::uint16_t>(ExitReason::Wrmsr) && m_params.x2apic_icr_fastpath) {
        // handle_fastpath_set_msr_irqoff -> handle_fastpath_set_x2apic_icr_irqoff.
        cpu::GuestContext& g = v.m_ctx;
        if (static_cast<std::uint32_t>(g.regs.rcx) != kMsrX2apicIcr || !v.vm().x2apic()) return false;
        const std::uint64_t icr = (g.regs.rdx << 32) | (g.regs.rax & 0xFFFFFFFFu);
        // kvm_x2apic_icr_write refuses reserved bits: the slow path injects the #GP.
        if (icr & apic::kX2ApicIcrReservedBits) return false;
        const apic::Icr f = apic::decode_icr(icr, true);
        if (f.shorthand != apic::Shorthand::None || f.destination_mode != apic::DestinationMode::Physical ||
            f.delivery_mode != apic::DeliveryMode::Fixed || f.destination == kX2apicBroadcast)
            return false;
        p.step(Cost::KvmFastpathX2apicIcr, "handle_fastpath_set_x2apic_icr_irqoff", "x86.c", "kvm");
        ++m_stat_x2apic_icr_fastpath;
        kvm_x2apic_icr_write(v, icr);
        skip_emulated_instruction(v);
        return true;
    }
    return false;
}

void Kvm::handle_exit(Vcpu& v, const cpu::VmExit& e) {
    LogicalProcessor& p = lp(v);
    cpu::GuestContext& g = v.m_ctx;
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    switch (static_cast<ExitReason>(e.basic())) {
        case ExitReason::ExternalInterrupt:
            return;  // handled with IRQs off
        case ExitReason::ApicWrite: {
            // handle_apic_write -> kvm_apic_write_nodecode (trap-like: RIP already advanced).
            p.step(Cost::KvmApicWriteHandler, "handle_apic_write -> kvm_apic_write_nodecode", "vmx.c, lapic.c", "kvm");
            const auto offset = static_cast<std::uint32_t>(e.qualification & 0xFF0);
            if (v.vm().x2apic() && offset == cpu::kVapicIcrLo) {
                kvm_x2apic_icr_write(v, page.read64(cpu::kVapicIcrLo));
            } else {
                kvm_lapic_reg_write(v, offset, page.read32(offset));
            }
            return;
        }
        case ExitReason::Wrmsr:
            emulate_x2apic_msr(v, true, "kvm_emulate_wrmsr -> kvm_set_msr_common");
            return;
        case ExitReason::Rdmsr:
            emulate_x2apic_msr(v, false, "kvm_emulate_rdmsr");
            return;
        case ExitReason::ApicAccess:
        case ExitReason::EptMisconfig: {
            // handle_apic_access / handle_ept_misconfig -> kvm_emulate_instruction -> MMIO.
            emulate_apic_mmio(v, "kvm_emulate_instruction (MMIO)");
            return;
        }
        case ExitReason::VirtualizedEoi:
            p.step(Cost::KvmHandleEoiInduced, "handle_apic_eoi_induced", "vmx.c", "kvm");
            return;
        case ExitReason::Hlt:
            p.step(Cost::KvmHandleHlt, "kvm_emulate_halt", "x86.c", "kvm");
            skip_emulated_instruction(v);
            if (!kvm_vcpu_has_events(v)) v.m_mp_state = MpState::Halted;
            return;
        case ExitReason::Cpuid:
            p.step(Cost::KvmHandleCpuid, "kvm_emulate_cpuid", "cpuid.c", "kvm");
            g.regs.rax = g.regs.rbx = g.regs.rcx = g.regs.rdx = 0;
            skip_emulated_instruction(v);
            return;
        case ExitReason::Vmcall:
            p.step(Cost::KvmHandleVmcall, "kvm_emulate_hypercall", "x86.c", "kvm");
            g.regs.rax = 0;
            skip_emulated_instruction(v);
            return;
        case ExitReason::TprBelowThreshold:
        case ExitReason::InterruptWindow:
            v.m_req_event = true;
            return;
        case ExitReason::NmiWindow: {
            // handle_nmi_window: close the window; the pending NMI is injected now.
            const auto primary = p.vmread(Field::CpuBasedVmExecControl).value;
            p.vmwrite(Field::CpuBasedVmExecControl, primary & ~std::uint64_t{vmcs::kPrimaryNmiWindowExiting});
            v.m_req_event = true;
            return;
        }
        case ExitReason::ExceptionOrNmi:
            // handle_exception_nmi_irqoff: an NMI that arrived for the host (NMI exiting)
            // was handled by the host with IRQs off; no exception is intercepted.
            if (vmcs::interruption_type(e.intr_info) == vmcs::InterruptionType::Nmi) return;
            throw cpu::SimulationError(v.m_ctx.name + ": unexpected exception VM exit, information " +
                                       std::to_string(e.intr_info));
        case ExitReason::Vmclear:
        case ExitReason::Vmlaunch:
        case ExitReason::Vmptrld:
        case ExitReason::Vmptrst:
        case ExitReason::Vmread:
        case ExitReason::Vmresume:
        case ExitReason::Vmwrite:
        case ExitReason::Vmxoff:
        case ExitReason::Vmxon:
            handle_vmx_instruction(v, e);  // vmm/nested.cpp
            return;
        default:
            throw cpu::SimulationError(v.m_ctx.name + ": unexpected VM exit, basic reason " +
                                       std::to_string(e.basic()));
    }
}

// ====================================================================================
// Local APIC emulation (lapic.c)
// ====================================================================================
std::uint32_t Kvm::kvm_lapic_reg_read(Vcpu& v, std::uint32_t offset) {
    lp(v).step(Cost::KvmApicRegAccess, "kvm_lapic_reg_read", "lapic.c", "kvm");
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    return page.read32(offset & 0xFF0);
}

bool Kvm::kvm_lapic_reg_write(Vcpu& v, std::uint32_t offset, std::uint32_t value) {
    LogicalProcessor& p = lp(v);
    p.step(Cost::KvmApicRegAccess, "kvm_lapic_reg_write", "lapic.c", "kvm");
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    const bool x2apic = v.vm().x2apic();
    offset &= 0xFF0;
    switch (offset) {
        case cpu::kVapicId:
            if (x2apic) return false;  // read-only in x2APIC mode
            kvm_apic_set_xapic_id(v, static_cast<std::uint8_t>(value >> 24));
            return true;
        case cpu::kVapicTpr:
            // apic_set_tpr -> apic_update_ppr: a lower PPR may unmask a pending interrupt.
            page.write32(cpu::kVapicTpr, value & 0xFF);
            v.m_req_event = true;
            return true;
        case cpu::kVapicEoi: {
            const auto isr = page.highest_bit(cpu::kVapicIsr);
            if (isr) page.clear_bit(cpu::kVapicIsr, *isr);
            v.m_req_event = true;
            return true;
        }
        case cpu::kVapicLdr:
            if (x2apic) return false;  // derived from the x2APIC ID, read-only
            page.write32(cpu::kVapicLdr, value & kApicLdrMask);
            v.vm().logical_map_changed();
            return true;
        case cpu::kVapicDfr:
            if (x2apic) return false;  // no DFR in x2APIC mode
            page.write32(cpu::kVapicDfr, value | kApicDfrReservedOnes);
            v.vm().logical_map_changed();
            return true;
        case cpu::kVapicSvr:
            page.write32(cpu::kVapicSvr, value & kApicSvrWritable);
            return true;
        case cpu::kVapicEsr:
            if (x2apic && value != 0) return false;  // an x2APIC ESR write must be 0
            page.write32(cpu::kVapicEsr, 0);
            return true;
        case cpu::kVapicIcrLo: {
            const std::uint32_t lo = value & ~kIcrBusy;
            const std::uint32_t dest = page.read32(cpu::kVapicIcrHi) >> 24;
            kvm_apic_send_ipi(v, lo, dest);
            page.write32(cpu::kVapicIcrLo, lo);
            return true;
        }
        case cpu::kVapicIcrHi:
            if (x2apic) return false;  // no ICR2 in x2APIC mode (one 64-bit ICR)
            page.write32(cpu::kVapicIcrHi, value & 0xFF000000u);
            return true;
        case cpu::kVapicSelfIpi:
            if (!x2apic) return false;  // x2APIC only
            kvm_apic_send_ipi(v, (value & 0xFF) | (1u << 18), 0);
            return true;
        case cpu::kVapicTimerInitial:
            page.write32(offset, value);
            return true;
        case cpu::kVapicTimerDivide:
            page.write32(offset, value & kApicTimerDivideWritable);
            return true;
        default:
            break;
    }
    // The LVTs this APIC has (apic_lvt_mask), then nothing else: read-only (version, PPR,
    // ISR, TMR, IRR, current count) and reserved offsets give KVM's "ret = 1" (a #GP for a
    // WRMSR; an MMIO write is dropped).
    if (const auto lvt = apic::lvt_at_offset(offset); lvt && *lvt != apic::Lvt::Cmci) {
        page.write32(offset, value & apic::lvt_writable_bits(*lvt));
        return true;
    }
    return false;
}

void Kvm::kvm_apic_set_xapic_id(Vcpu& v, std::uint8_t id) {
    LogicalProcessor& p = lp(v);
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    page.write32(cpu::kVapicId, std::uint32_t{id} << 24);
    v.vm().recalculate_apic_map();
    v.vm().logical_map_changed();
    // kvm_recalculate_apic_map: an xAPIC ID that differs from the vCPU ID inhibits APICv
    // (APICV_INHIBIT_REASON_APIC_ID_MODIFIED) for the whole VM.
    if (id == (v.m_id & 0xFF) || v.vm().apicv_inhibited()) return;
    if (m_params.inject_bug == InjectedBug::IpivAfterIdChange) return;  // APICv and IPIv stay on
    v.vm().inhibit_apicv("apic_id_modified");
    // kvm_make_all_cpus_request(KVM_REQ_APICV_UPDATE): kick every vCPU so that each one
    // refreshes its controls (IPIv off) before it runs again, and, a KVM_REQUEST_WAIT
    // request, wait until the kicked ones were taken out of guest mode.
    std::vector<std::pair<Vcpu*, std::uint64_t>> kicked;  // and its guest-mode exits then
    for (auto& t : v.vm().vcpus()) {
        if (t.get() == &v) continue;
        p.sync_for_shared_state();
        if (t->m_mode == VcpuMode::InGuestMode) kicked.emplace_back(t.get(), t->m_guest_mode_exits);
        kvm_vcpu_kick(source(v), *t);
    }
    for (auto [t, exits] : kicked) wait_out_of_guest_mode(v, *t, exits);
}

void Kvm::kvm_x2apic_icr_write(Vcpu& v, std::uint64_t icr) {
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    const std::uint64_t clean = icr & ~std::uint64_t{kIcrBusy};  // also the unused bit 12
    kvm_apic_send_ipi(v, static_cast<std::uint32_t>(clean), static_cast<std::uint32_t>(clean >> 32));
    page.write64(cpu::kVapicIcrLo, clean);
}

void Kvm::kvm_apic_send_ipi(Vcpu& src, std::uint32_t icr_lo, std::uint32_t dest) {
    LogicalProcessor& p = lp(src);
    p.step(Cost::KvmApicSendIpi, "kvm_apic_send_ipi -> kvm_irq_delivery_to_apic_fast", "lapic.c", "kvm");
    const bool x2apic = src.vm().x2apic();
    const std::uint64_t icr = x2apic ? (std::uint64_t{dest} << 32) | icr_lo
                                     : (std::uint64_t{dest & 0xFF} << 56) | icr_lo;
    const apic::Icr fields = apic::decode_icr(icr, x2apic);
    apic::InterruptMessage msg = apic::message_from_icr(fields, x2apic, src.apic_id());
    // struct kvm_lapic_irq keeps the ICR's level and trigger mode (kvm_apic_send_ipi),
    // where a physical APIC issues every message as edge / assert.
    msg.level = fields.level;
    msg.trigger_mode = fields.trigger_mode;
    ++m_stat_ipis_sent;
    kvm_irq_delivery_to_apic(source(src), src.vm(), msg);
}

void Kvm::kvm_irq_delivery_to_apic(const IrqSource& src, Vm& vm, const apic::InterruptMessage& msg) {
    LogicalProcessor& p = src.cpu;
    // The optimized map (physical, no shorthand, not broadcast): phys_map[dest].
    if (msg.shorthand == apic::Shorthand::None && msg.destination_mode == apic::DestinationMode::Physical &&
        !msg.broadcast()) {
        std::uint32_t id = msg.destination;
        if (m_params.inject_bug == InjectedBug::StalePhysMap && vm.vcpus().size() > 1)
            id = (id + 1) % static_cast<std::uint32_t>(vm.vcpus().size());  // the wrong entry of phys_map
        if (Vcpu* t = vm.vcpu_by_apic_id(id)) apic_accept_irq(src, *t, msg);
        return;
    }
    // Its logical part for fixed messages (kvm_apic_map_get_logical_dest): a cluster's
    // members, unless the map is disabled.
    if (msg.shorthand == apic::Shorthand::None && msg.destination_mode == apic::DestinationMode::Logical &&
        msg.delivery_mode == apic::DeliveryMode::Fixed && !msg.broadcast()) {
        std::vector<Vcpu*> targets;
        if (vm.logical_destinations(msg, targets)) {
            ++m_stat_ipis_logical_map;
            for (Vcpu* t : targets) apic_accept_irq(src, *t, msg);
            return;
        }
    }
    // Slow path: kvm_apic_match_dest against every vCPU.
    ++m_stat_ipis_slow_path;
    std::vector<apic::DestinationView> views;
    std::size_t source_index = 0;
    auto& vcpus = vm.vcpus();
    for (std::size_t i = 0; i < vcpus.size(); ++i) {
        Vcpu& t = *vcpus[i];
        p.step(Cost::KvmApicSendIpiSlowMatch, "kvm_apic_match_dest", "lapic.c", "kvm");
        cpu::VirtualApicPage page(m_platform.memory(), t.m_vapic);
        apic::DestinationView view;
        view.apic_id = t.apic_id();
        view.x2apic = vm.x2apic();
        view.ldr = page.read32(cpu::kVapicLdr);
        view.dfr_model = (page.read32(cpu::kVapicDfr) >> 28) & 0xF;
        view.ppr = static_cast<std::uint8_t>(page.read32(cpu::kVapicPpr));
        views.push_back(view);
        if (&t == src.vcpu) source_index = i;
    }
    for (std::size_t i : apic::resolve_destinations(msg, views, source_index))
        apic_accept_irq(src, *vcpus[i], msg);
}

void Kvm::apic_accept_irq(const IrqSource& src, Vcpu& target, const apic::InterruptMessage& msg) {
    const std::uint8_t vector = msg.vector;
    LogicalProcessor& p = src.cpu;
    p.step(Cost::KvmAcceptIrq, "__apic_accept_irq", "lapic.c", "kvm");
    p.sync_for_shared_state();  // the target's mode and blocked state, as of now
    switch (msg.delivery_mode) {
        case apic::DeliveryMode::Fixed:
        case apic::DeliveryMode::LowestPriority:
            if (target.apicv_active()) {
                deliver_posted_interrupt(src, target, vector);
            } else {
                // kvm_lapic_set_irr + KVM_REQ_EVENT + kvm_vcpu_kick.
                cpu::VirtualApicPage page(m_platform.memory(), target.m_vapic);
                if (page.test_bit(cpu::kVapicIrr, vector)) ++m_coalesced;
                page.set_bit(cpu::kVapicIrr, vector);
                target.m_req_event = true;
                kvm_vcpu_kick(src, target);
            }
            return;
        case apic::DeliveryMode::Nmi:
            // kvm_inject_nmi: nmi_queued, then process_nmi caps what is pending at two.
            target.m_nmi_pending = std::min(target.m_nmi_pending + 1, 2u);
            target.m_req_event = true;
            kvm_vcpu_kick(src, target);
            return;
        case apic::DeliveryMode::Init:
            // "if (!trig_mode || level)": an INIT level de-assert (which Linux sends after
            // the INIT) changes nothing.
            if (apic::is_init_level_deassert(msg)) return;
            target.m_pending_init = true;
            target.m_req_event = true;
            kvm_vcpu_kick(src, target);
            return;
        case apic::DeliveryMode::StartUp:
            target.m_sipi_vector = vector;
            target.m_pending_sipi = true;
            target.m_req_event = true;
            kvm_vcpu_kick(src, target);
            return;
        default:
            return;  // SMIs are not modelled for guests
    }
}

void Kvm::deliver_posted_interrupt(const IrqSource& src, Vcpu& target, std::uint8_t vector) {
    LogicalProcessor& p = src.cpu;
    p.step(Cost::KvmDeliverPostedInterrupt, "vmx_deliver_posted_interrupt", "vmx.c", "kvm");
    pid::PostedInterruptDescriptor desc(p.memory(), target.m_pi_desc);
    if (desc.kvm_test_and_set_pir(vector)) {
        ++m_coalesced;  // the vector was pending already: the two interrupts coalesce
        return;
    }
    if (desc.kvm_test_and_set_on()) return;  // a notification is outstanding
    // kvm_vcpu_trigger_posted_interrupt.
    if (target.m_mode == VcpuMode::InGuestMode && &target != src.vcpu) {
        p.step(Cost::KvmSendIpiMask, "apic->send_IPI_mask(POSTED_INTR_VECTOR)", "vmx.c", "kvm");
        if (cpu::InterruptObserver* o = m_platform.interrupt_observer())
            o->notification_sent(target.m_pi_desc, kPostedIntrVector, p.now_cycles());
        p.host_send_ipi(m_platform.cpu(target.m_pcpu).apic().apic_id(), kPostedIntrVector);
        ++m_stat_notifications_sent;
        return;
    }
    kvm_vcpu_wake_up(src, target);
}

void Kvm::kvm_vcpu_kick(const IrqSource& src, Vcpu& target) {
    kvm_vcpu_wake_up(src, target);
    if (target.m_mode == VcpuMode::InGuestMode && &target != src.vcpu) {
        LogicalProcessor& p = src.cpu;
        p.step(Cost::KvmSendIpiMask, "smp_send_reschedule", "kvm_main.c kvm_vcpu_kick", "kvm");
        p.host_send_ipi(m_platform.cpu(target.m_pcpu).apic().apic_id(), kRescheduleVector);
    }
}

void Kvm::kvm_vcpu_wake_up(const IrqSource& src, Vcpu& target) {
    LogicalProcessor& p = src.cpu;
    p.step(Cost::KvmVcpuWakeUp, "kvm_vcpu_wake_up", "kvm_main.c", "kvm");
    p.sync_for_shared_state();  // the target's and its CPU's state, as of now
    if (target.m_polling) {
        // Halt polling: the poller finds the posted interrupt at its next check, once the
        // line has come over (no wakeup, no IPI).
        target.m_wake_event.notify(p.annotation() + p.clock().to_time(p.costs()[Cost::MemLineTransfer]));
        return;
    }
    if (!target.m_blocked) return;
    if (target.m_pcpu == src.pcpu || !m_sched[target.m_pcpu]->idle()) {
        // A local wakeup, or a busy CPU that enqueues the thread: no cross-CPU signal.
        wake_thread(target, p.annotation());
        return;
    }
    // try_to_wake_up of the vCPU thread on an idle CPU (ttwu_queue_wakelist):
    if (m_params.host_idle == HostIdle::Poll) {
        // set_nr_if_polling: a store to the idle task's flags, which its polling loop
        // sees once the line has moved to its CPU.
        ++m_stat_wakeups_polling;
        wake_thread(target, p.annotation() + p.clock().to_time(p.costs()[Cost::MemLineTransfer]));
        return;
    }
    // smp_send_reschedule: the idle CPU leaves MWAIT for the reschedule IPI, whose handler
    // (scheduler_ipi) lets the woken thread run.
    ++m_stat_wakeups_rescheduled;
    m_remote_wakeups[target.m_pcpu].push_back(&target);
    p.step(Cost::KvmSendIpiMask, "smp_send_reschedule (ttwu_queue_wakelist)", "kernel/sched/core.c", "kvm");
    p.host_send_ipi(m_platform.cpu(target.m_pcpu).apic().apic_id(), kRescheduleVector);
}

bool Kvm::sync_pir_to_irr(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    p.step(Cost::KvmSyncPirToIrr, "vmx_sync_pir_to_irr", "vmx.c", "kvm");
    const bool got_posted_interrupt = pir_to_irr(v, p.memory());
    if (!v.apicv_active()) return got_posted_interrupt;  // KVM_REQ_EVENT: the caller injects
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    const std::uint8_t max_irr = page.highest_bit(cpu::kVapicIrr).value_or(0);
    const auto status = p.current_vmcs()->hw_read(Field::GuestIntrStatus);
    if ((status & 0xFF) != max_irr) p.vmwrite(Field::GuestIntrStatus, (status & 0xFF00) | max_irr);
    return got_posted_interrupt;
}

std::uint8_t Kvm::apic_ppr(Vcpu& v) {
    // __apic_update_ppr: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4.
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    const auto tpr = static_cast<std::uint8_t>(page.read32(cpu::kVapicTpr));
    const std::uint8_t isrv = page.highest_bit(cpu::kVapicIsr).value_or(0);
    return (tpr & kPriorityClassMask) >= (isrv & kPriorityClassMask) ? tpr
                                                                     : static_cast<std::uint8_t>(isrv & kPriorityClassMask);
}

void Kvm::inject_pending_exception(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    p.step(Cost::KvmInjectInterrupt, "vmx_inject_exception (#GP)", "vmx.c", "kvm");
    p.vmwrite(Field::VmEntryIntrInfoField,
              vmcs::make_interruption_info(x86::kVectorGp, vmcs::InterruptionType::HardwareException, true));
    p.vmwrite(Field::VmEntryExceptionErrorCode, 0);
    v.m_pending_gp = false;
}

bool Kvm::vmx_nmi_allowed(const vmcs::Vmcs& vmcs) {
    const auto intr = vmcs.hw_read(Field::GuestInterruptibilityInfo);
    return !(intr & vmcs::kBlockingByNmi) && !vmcs::blocked_by_sti_or_mov_ss(intr);
}

bool Kvm::inject_pending_nmi(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    const auto primary = p.current_vmcs()->hw_read(Field::CpuBasedVmExecControl);
    if (!vmx_nmi_allowed(*p.current_vmcs())) {
        // enable_nmi_window: exit as soon as the guest's IRET unblocks NMIs.
        p.vmwrite(Field::CpuBasedVmExecControl, primary | vmcs::kPrimaryNmiWindowExiting);
        return false;
    }
    p.step(Cost::KvmInjectInterrupt, "vmx_inject_nmi", "vmx.c", "kvm");
    --v.m_nmi_pending;
    ++m_stat_nmis_injected;
    p.vmwrite(Field::VmEntryIntrInfoField,
              vmcs::kVectorNmi | (static_cast<std::uint32_t>(vmcs::InterruptionType::Nmi) << vmcs::kIntrInfoTypeShift) |
                  vmcs::kIntrInfoValid);
    // Another NMI waits behind this one: ask for the window after its IRET.
    if (v.m_nmi_pending) p.vmwrite(Field::CpuBasedVmExecControl, primary | vmcs::kPrimaryNmiWindowExiting);
    return true;
}

void Kvm::inject_pending_interrupt(Vcpu& v) {
    // Without APICv (kvm_check_and_inject_events, update_cr8_intercept): inject the highest
    // IRR vector that the PPR lets through, through the VM-entry interruption-information
    // field when the guest can take it, else ask for an interrupt window; an IRR vector
    // masked by the TPR sets the TPR threshold, so that lowering the TPR below it exits.
    LogicalProcessor& p = lp(v);
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    auto primary = p.current_vmcs()->hw_read(Field::CpuBasedVmExecControl);
    const auto irr = page.highest_bit(cpu::kVapicIrr);
    const std::uint8_t tpr_class = (page.read32(cpu::kVapicTpr) >> 4) & 0xF;
    const std::uint8_t irr_class = irr ? (*irr >> 4) : 0;
    // vmx_update_cr8_intercept: threshold = the IRR's class if the TPR masks it, else 0.
    p.vmwrite(Field::TprThreshold, irr && tpr_class >= irr_class ? irr_class : 0);
    if (!irr || (*irr & kPriorityClassMask) <= (apic_ppr(v) & kPriorityClassMask)) {
        p.vmwrite(Field::CpuBasedVmExecControl, primary & ~std::uint64_t{vmcs::kPrimaryInterruptWindowExiting});
        return;
    }
    if (vmx_interrupt_blocked(*p.current_vmcs())) {
        p.vmwrite(Field::CpuBasedVmExecControl, primary | vmcs::kPrimaryInterruptWindowExiting);
        return;
    }
    p.vmwrite(Field::CpuBasedVmExecControl, primary & ~std::uint64_t{vmcs::kPrimaryInterruptWindowExiting});
    p.step(Cost::KvmInjectInterrupt, "vmx_inject_irq", "vmx.c", "kvm");
    ++m_stat_interrupts_injected;
    page.clear_bit(cpu::kVapicIrr, *irr);
    page.set_bit(cpu::kVapicIsr, *irr);
    p.vmwrite(Field::VmEntryIntrInfoField, *irr | vmcs::kIntrInfoValid);
}

bool Kvm::kvm_vcpu_has_events(Vcpu& v) {
    if ((v.m_pending_init || v.m_pending_sipi) && !nested_init_blocked(v)) return true;
    if (v.m_nmi_pending && vmx_nmi_allowed(v.loaded_context().vmcs)) return true;
    // kvm_arch_interrupt_allowed: a vCPU that halted with interrupts disabled stays halted.
    // (Plain reads of its VMCS and pages: a blocked thread checks without running on the CPU.)
    if (vmx_interrupt_blocked(v.loaded_context().vmcs)) return false;
    // kvm_cpu_has_interrupt -> apic_has_interrupt_for_ppr -> vmx_sync_pir_to_irr: the
    // check itself clears ON and moves the PIR into the IRR. Clearing ON matters: ON can be
    // left set with an empty PIR (a poster set PIR and ON between posted-interrupt
    // processing's clear of ON and its fetch of PIR), and every later poster that finds ON
    // set neither notifies nor wakes the vCPU.
    if (pir_to_irr_while_blocked(v)) v.m_req_event = true;
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    const auto irr = page.highest_bit(cpu::kVapicIrr);
    if (!irr) return false;
    return (*irr & kPriorityClassMask) > (apic_ppr(v) & kPriorityClassMask);
}

bool Kvm::pir_to_irr(Vcpu& v, model::MemoryPort& port) {
    pid::PostedInterruptDescriptor desc(port, v.m_pi_desc);
    if (!desc.pi_test_on()) return false;
    desc.clear_on();
    const pid::Pir pir = desc.kvm_sync_pir_words();
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    bool any = false;
    for (std::uint8_t vec : pir.vectors()) {
        // __kvm_apic_update_irr ORs the PIR into the IRR: a vector pending in both is one
        // interrupt from then on.
        if (page.test_bit(cpu::kVapicIrr, vec)) ++m_coalesced;
        page.set_bit(cpu::kVapicIrr, vec);
        any = true;
    }
    return any;
}

bool Kvm::pir_to_irr_while_blocked(Vcpu& v) {
    // The same steps as sync_pir_to_irr, as plain (untimed) accesses: the check runs on a
    // vCPU thread that does not own the CPU, and must not yield between it and the wait
    // for a wake-up (a wake-up in between would be lost).
    model::DirectMemoryPort port(m_platform.memory(), model::kDeviceAgent);
    return pir_to_irr(v, port);
}

void Kvm::kvm_apic_accept_events(Vcpu& v) {
    if (!v.m_pending_init && !v.m_pending_sipi) return;
    LogicalProcessor& p = lp(v);
    p.step(Cost::KvmAcceptEvents, "kvm_apic_accept_events", "lapic.c", "kvm");
    // Nested VMX first: in guest mode INIT/SIPI become VM exits to L1; in L1's VMX root
    // operation INIT stays latched and SIPIs are dropped (vmm/nested.cpp).
    if (nested_apic_accept_events(v)) return;
    if (v.m_pending_init) {
        v.m_pending_init = false;
        kvm_vcpu_reset_on_init(v);
        v.m_mp_state = MpState::InitReceived;  // kvm_vcpu_reset for an AP
        v.m_ctx.restart_requested = v.m_ctx.thread_started;  // what it ran is gone
    }
    if (v.m_pending_sipi) {
        v.m_pending_sipi = false;
        if (v.m_mp_state == MpState::InitReceived) {
            // kvm_vcpu_deliver_sipi_vector: CS.selector = vector << 8, CS.base = vector << 12, RIP = 0.
            p.vmwrite(Field::GuestCsSelector, std::uint64_t{v.m_sipi_vector} << 8);
            p.vmwrite(Field::GuestCsBase, std::uint64_t{v.m_sipi_vector} << 12);
            p.vmwrite(Field::GuestRip, 0);
            v.m_mp_state = MpState::Runnable;
        }
    }
}

void Kvm::kvm_vcpu_reset_on_init(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    // kvm_lapic_reset(init_event): every register but the APIC ID (and the version) to its
    // INIT value (SDM 11.4.7.3): IRR, ISR, TMR, ICR, TPR, ESR and the timer 0, every LVT
    // masked, xAPIC LDR 0 and DFR all ones (an x2APIC LDR follows the ID). The SVR keeps the
    // APIC software-enabled, as vtxsim's vCPUs start (docs/vmm.md "INIT").
    cpu::VirtualApicPage page(m_platform.memory(), v.m_vapic);
    for (std::uint32_t i = 0; i < 8; ++i)
        for (std::uint32_t base : {cpu::kVapicIrr, cpu::kVapicIsr, cpu::kVapicTmr}) page.write32(base + 0x10 * i, 0);
    for (std::uint32_t reg : {cpu::kVapicTpr, cpu::kVapicPpr, cpu::kVapicEsr, cpu::kVapicIcrLo, cpu::kVapicIcrHi,
                              cpu::kVapicTimerInitial, cpu::kVapicTimerCurrent, cpu::kVapicTimerDivide})
        page.write32(reg, 0);
    for (apic::Lvt lvt : apic::kAllLvts) page.write32(apic::lvt_offset(lvt), kLvtMaskedReset);
    page.write32(cpu::kVapicSvr, kSvrEnabledReset);
    if (!v.vm().x2apic()) {
        page.write32(cpu::kVapicLdr, 0);
        page.write32(cpu::kVapicDfr, kApicDfrResetFlat);
        v.vm().logical_map_changed();
    }
    // vmx_apicv_post_state_restore: ON and the PIR cleared (what was posted is gone).
    pid::PostedInterruptDescriptor desc(p.memory(), v.m_pi_desc);
    desc.clear_on();
    (void)desc.kvm_sync_pir_words();
    // kvm_vcpu_reset(init_event): no NMI or interrupt pending, RFLAGS = 2 (IF = 0), no
    // blocking; RVI and SVI 0 (hwapic_irr_update / hwapic_isr_update).
    v.m_nmi_pending = 0;
    v.m_pending_gp = false;
    v.m_req_event = false;
    p.vmwrite(Field::GuestRflags, x86::kRflagsReserved1);
    p.vmwrite(Field::GuestInterruptibilityInfo, 0);
    if (v.apicv_active()) p.vmwrite(Field::GuestIntrStatus, 0);
}

// ====================================================================================
// Blocking and posted-interrupt wakeup (x86.c kvm_vcpu_halt, posted_intr.c)
// ====================================================================================
void Kvm::kvm_vcpu_halt(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    const double ghz = m_platform.profile().core_ghz;
    const double start = p.now_cycles();
    bool polled = false;
    if (m_params.halt_poll_ns > 0 && v.m_halt_poll_ns > 0) {
        // Poll: the thread keeps its CPU (no vcpu_put, no wakeup vector), interrupts on, and
        // checks for an event until its poll time is over.
        // Its checks read the PID (kvm_arch_vcpu_runnable -> the pending posted interrupt):
        // a store to it (IPIv posting, KVM posting) is seen one line transfer later, before
        // any notification interrupt arrives.
        model::MemoryTarget& memory = m_platform.memory_target();
        if (!v.m_poll_wake) {
            v.m_poll_wake = std::make_unique<sc_core::sc_event_or_list>();
            *v.m_poll_wake |= v.m_wake_event;
            *v.m_poll_wake |= p.apic().interrupt_event();
            *v.m_poll_wake |= memory.line_written_event(v.m_pi_desc);
        }
        ++m_stat_halt_polls;
        const double stop = start + v.m_halt_poll_ns * ghz;
        v.m_polling = true;
        for (;;) {
            // Decoupled mode: a poster running ahead of SystemC time stores "in the future";
            // the poller must not see the store before it takes effect (exact mode: no-op).
            p.sync();
            const sc_core::sc_time effective = memory.line_store_time(v.m_pi_desc);
            if (effective > sc_core::sc_time_stamp()) sc_core::wait(effective - sc_core::sc_time_stamp());
            const std::uint64_t writes = memory.line_write_count(v.m_pi_desc);
            p.memory().read64(v.m_pi_desc + pid::kPidNotificationInfoOffset);  // the poll's load of ON
            p.step(Cost::KvmHaltPollCheck, "kvm_vcpu_halt: kvm_vcpu_check_block", "kvm_main.c", "kvm");
            if (kvm_vcpu_has_events(v)) {
                polled = true;
                break;
            }
            // kvm_vcpu_can_poll: no signal pending (check_block's -EINTR), no need_resched.
            if (!v.m_userspace_work.empty() || m_sched[v.m_pcpu]->need_resched()) break;
            if (p.now_cycles() >= stop) break;
            // Catch up with SystemC time first: what arrives meanwhile is seen, not slept through.
            p.sync();
            if (memory.line_write_count(v.m_pi_desc) != writes) continue;  // posted while checking
            if (!p.host_interrupt_pending()) {
                memory.begin_wait(v.m_pi_desc, writes);
                p.wait_for(*v.m_poll_wake, stop - p.now_cycles());  // cpu_relax() until something arrives
                memory.end_wait(v.m_pi_desc);
            }
            p.local_irq_enable();  // a host interrupt: its handler runs
        }
        v.m_polling = false;
    }
    if (polled) {
        ++m_stat_halt_poll_successes;
        if (v.m_mp_state == MpState::Halted) v.m_mp_state = MpState::Runnable;
    } else if (v.m_userspace_work.empty()) {
        kvm_vcpu_block(v);
    }
    // Adapt the poll time (grow_halt_poll_ns / shrink_halt_poll_ns).
    const double halt_ns = (p.now_cycles() - start) / ghz;
    const double max = static_cast<double>(m_params.halt_poll_ns);
    constexpr double kGrow = 2, kGrowStart = 10000;  // halt_poll_ns_grow, halt_poll_ns_grow_start
    if (max == 0) {
        v.m_halt_poll_ns = 0;
    } else if (halt_ns <= v.m_halt_poll_ns) {
    } else if (v.m_halt_poll_ns > 0 && halt_ns > max) {
        v.m_halt_poll_ns = 0;  // halt_poll_ns_shrink 0: reset
    } else if (v.m_halt_poll_ns < max && halt_ns < max) {
        v.m_halt_poll_ns = std::min(std::max(v.m_halt_poll_ns * kGrow, kGrowStart), max);
    }
}

void Kvm::kvm_vcpu_block(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    HostScheduler& sched = *m_sched[v.m_pcpu];
    p.step(Cost::KvmVcpuBlock, "kvm_vcpu_block", "kvm_main.c", "kvm");
    for (;;) {
        // prepare_to_rcuwait (TASK_INTERRUPTIBLE): a wake-up from here on makes schedule()
        // return at once; then kvm_vcpu_check_block, as KVM orders them.
        v.m_blocked = true;
        v.m_woken = false;
        if (kvm_vcpu_has_events(v)) {
            if (v.m_mp_state == MpState::Halted) v.m_mp_state = MpState::Runnable;
            break;
        }
        if (!v.m_userspace_work.empty()) break;  // signal_pending: -EINTR, still halted
        // schedule() -> vcpu_put -> vmx_vcpu_pi_put: the wakeup handler is armed for a
        // blocking vCPU that posted interrupts can target and that an interrupt can wake.
        // A posting between the check above and the NV switch is what its ON re-check is for.
        if (vmx_needs_pi_wakeup(v) && !vmx_interrupt_blocked(v.loaded_context().vmcs)) pi_enable_wakeup_handler(v);
        // The CPU goes to another vCPU thread or the idle task, which takes the wakeup
        // interrupt; this thread sleeps until a try_to_wake_up (kvm_vcpu_wake_up).
        sched.release(&v);
        while (!v.m_woken) sc_core::wait(v.m_wake_event);
        sched.acquire(&v);
        p.step(Cost::KvmVcpuUnblock, "vCPU thread scheduled in after wake-up", "kvm_main.c", "kvm");
        vcpu_load(v);
    }
    v.m_blocked = false;  // finish_rcuwait
}

void Kvm::leave_guest_mode(Vcpu& v) {
    v.m_mode = VcpuMode::OutsideGuestMode;
    ++v.m_guest_mode_exits;
    if (v.m_guest_mode_waiters) v.m_left_guest_mode.notify(lp(v).annotation());
}

void Kvm::wait_out_of_guest_mode(Vcpu& waiter, Vcpu& target, std::uint64_t exits_at_kick) {
    // smp_call_function_many(..., wait): the kicking CPU spins until the kick's IPI was
    // taken, which in guest mode means a VM exit. Taken once is enough: the target may have
    // entered the guest again by the time the waiter looks (it was waiting forever then).
    LogicalProcessor& p = lp(waiter);
    p.step(Cost::KvmSendIpiMask, "kvm_make_all_cpus_request: wait for the kicked vCPU", "kvm_main.c", "kvm");
    p.sync();
    ++target.m_guest_mode_waiters;
    while (target.m_mode == VcpuMode::InGuestMode && target.m_guest_mode_exits == exits_at_kick)
        p.wait_for(target.m_left_guest_mode);
    --target.m_guest_mode_waiters;
}

void Kvm::entry_failed(const Vcpu& v, const std::string& what) const {
    // The processor gave the architectural answer; KVM cannot run this vCPU. With VMCS
    // values the user set (`--set vmcs.FIELD`), that is the input's consequence.
    if (!m_vmcs_overrides.empty()) {
        std::string set;
        for (const auto& [field, value] : m_vmcs_overrides)
            set += (set.empty() ? "" : ", ") + std::string("vmcs.") + std::string(vmcs::field_name(field));
        throw model::ConfigError(v.m_ctx.name + ": " + what + " (after --set " + set + ")");
    }
    throw cpu::SimulationError(v.m_ctx.name + ": " + what);
}

bool Kvm::vmx_needs_pi_wakeup(const Vcpu&) const {
    // vmx_can_use_ipiv() (IPI virtualization enabled for KVM, whatever APICv's state in
    // the VM: a vCPU whose VMCS still has IPIv may post) || vmx_can_use_vtd_pi() (no
    // assigned devices are modelled).
    return m_params.enable_ipiv;
}

bool Kvm::vmx_interrupt_blocked(const vmcs::Vmcs& vmcs) {
    // __vmx_interrupt_blocked: RFLAGS.IF = 0, or blocking by STI or by MOV SS.
    return !(vmcs.hw_read(Field::GuestRflags) & x86::kRflagsIf) ||
           vmcs::blocked_by_sti_or_mov_ss(vmcs.hw_read(Field::GuestInterruptibilityInfo));
}

void Kvm::pi_enable_wakeup_handler(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    p.step(Cost::KvmPiEnableWakeup, "pi_enable_wakeup_handler", "posted_intr.c", "kvm");
    if (m_params.inject_bug == InjectedBug::NoWakeupVector) return;
    m_wakeup_list[v.m_pcpu].push_back(&v);
    pid::PostedInterruptDescriptor desc(p.memory(), v.m_pi_desc);
    desc.set_nv(kPostedIntrWakeupVector);
    // An interrupt posted before NV changed: send the wakeup vector to ourselves.
    if (m_params.inject_bug == InjectedBug::NoOnRecheck) return;
    if (desc.pi_test_on()) p.host_send_ipi(p.apic().apic_id(), kPostedIntrWakeupVector);
}

void Kvm::vmx_vcpu_pi_load(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    p.step(Cost::KvmVcpuPiLoad, "vmx_vcpu_pi_load", "posted_intr.c", "kvm");
    auto& list = m_wakeup_list[v.m_pcpu];
    list.erase(std::remove(list.begin(), list.end(), &v), list.end());
    v.m_preempted = false;
    pid::PostedInterruptDescriptor desc(p.memory(), v.m_pi_desc);
    const std::uint32_t apic_id = p.apic().apic_id();
    const std::uint32_t ndst = p.apic().x2apic_mode() ? pid::ndst_for_x2apic(apic_id)
                                                      : pid::ndst_for_xapic(static_cast<std::uint8_t>(apic_id));
    const bool stale = m_params.inject_bug == InjectedBug::StaleNdst && desc.notification_info().ndst() != 0;
    desc.update_notification_info([&](pid::NotificationInfo n) {
        return (stale ? n : n.with_ndst(ndst)).with_sn(false).with_nv(kPostedIntrVector);
    });
    if (!desc.pir_empty()) desc.kvm_test_and_set_on();
}

void Kvm::scheduler_ipi(unsigned pcpu) {
    LogicalProcessor& p = m_platform.cpu(pcpu);
    m_sched[pcpu]->restart_tick();
    std::vector<Vcpu*> woken;
    woken.swap(m_remote_wakeups[pcpu]);
    for (Vcpu* v : woken) {
        p.step(Cost::KvmVcpuWakeUp, "scheduler_ipi: the woken vCPU thread runnable", "kernel/sched/core.c", "kvm");
        if (v->m_blocked) wake_thread(*v, p.annotation());
    }
}

void Kvm::pi_wakeup_handler(unsigned pcpu) {
    LogicalProcessor& p = m_platform.cpu(pcpu);
    p.sync_for_shared_state();  // the listed vCPUs' blocked state, as of now
    ++m_stat_pi_wakeup_handler;
    for (Vcpu* v : m_wakeup_list[pcpu]) {
        p.step(Cost::KvmPiWakeupHandler, "pi_wakeup_handler: check ON", "posted_intr.c", "kvm");
        pid::PostedInterruptDescriptor desc(p.memory(), v->m_pi_desc);
        if (desc.pi_test_on()) {
            ++m_stat_pi_wakeups;
            p.step(Cost::KvmVcpuWakeUp, "kvm_vcpu_wake_up", "kvm_main.c", "kvm");
            if (v->m_blocked) wake_thread(*v, p.annotation());
        }
    }
}

// ====================================================================================
// The VMM process's host side (docs/vmm.md "Host-side events")
// ====================================================================================
void Kvm::spawn_host_thread(unsigned pcpu, const std::string& name, std::function<void(HostThreadContext&)> body) {
    if (pcpu >= m_sched.size())
        throw model::ConfigError("host thread " + name + ": physical CPU " + std::to_string(pcpu) + " does not exist (" +
                                 std::to_string(m_sched.size()) + " CPUs)");
    m_host_threads.push_back(std::make_unique<char>());
    const HostThread self = m_host_threads.back().get();
    sc_core::sc_spawn(
        [this, pcpu, self, body = std::move(body)] {
            model::keep_input_error_kind([&] {
                HostThreadContext h{pcpu, self};
                m_sched[pcpu]->acquire(self);
                body(h);
                m_sched[pcpu]->release(self);
            });
        },
        sc_core::sc_gen_unique_name(name.c_str()));
}

void Kvm::host_sleep_until(HostThreadContext& h, double cycle) {
    LogicalProcessor& p = m_platform.cpu(h.pcpu);
    if (p.now_cycles() >= cycle) return;
    HostScheduler& sched = *m_sched[h.pcpu];
    sched.release(h.self);
    const sc_core::sc_time at = p.clock().to_time(cycle);
    if (at > sc_core::sc_time_stamp()) sc_core::wait(at - sc_core::sc_time_stamp());
    sched.acquire(h.self);
}

void Kvm::host_signal_msi(HostThreadContext& h, Vm& vm, const apic::InterruptMessage& msg) {
    LogicalProcessor& p = m_platform.cpu(h.pcpu);
    p.step(Cost::KvmSignalMsi, "ioctl(KVM_SIGNAL_MSI): kvm_send_userspace_msi, kvm_set_msi_irq",
           "virt/kvm/irqchip.c, irq_comm.c", "kvm");
    ++m_stat_msis_signalled;
    kvm_irq_delivery_to_apic(source(h), vm, msg);
}

void Kvm::host_preempt_vcpu(HostThreadContext& h, Vcpu& v, double cycles) {
    LogicalProcessor& p = m_platform.cpu(h.pcpu);
    p.step(Cost::HostTaskWakeup, "try_to_wake_up: a CPU-bound task onto the vCPU's CPU", "kernel/sched/core.c", "kvm");
    ++m_stat_task_wakeups;
    p.sync();  // the task is runnable from the waker's present on
    const unsigned pcpu = v.m_pcpu;
    m_host_threads.push_back(std::make_unique<char>());
    const HostThread task = m_host_threads.back().get();
    // The task: wakeup preemption takes the CPU from whatever runs there (check_preempt_curr
    // sets TIF_NEED_RESCHED; a vCPU thread sees it at its next pass through the run loop),
    // it computes for `cycles`, taking host interrupts as they come, then sleeps for good.
    sc_core::sc_spawn(
        [this, pcpu, task, cycles] {
            HostScheduler& sched = *m_sched[pcpu];
            LogicalProcessor& c = m_platform.cpu(pcpu);
            sched.acquire_preempting(task);
            sc_core::sc_event_or_list irq;
            irq |= c.apic().interrupt_event();
            for (double left = cycles; left > 0;) {
                const double start = c.now_cycles();
                if (!c.host_interrupt_pending()) c.wait_for(irq, left);
                left -= c.now_cycles() - start;
                c.local_irq_enable();  // the handlers' time is not the task's work
            }
            sched.release(task);
        },
        sc_core::sc_gen_unique_name("host_task"));
    // resched_curr: a CPU that runs a thread gets a reschedule IPI, which makes a running
    // guest exit (the idle task is woken by the enqueue itself).
    if (!m_sched[pcpu]->idle()) {
        p.step(Cost::KvmSendIpiMask, "resched_curr: smp_send_reschedule", "kernel/sched/core.c", "kvm");
        p.host_send_ipi(m_platform.cpu(pcpu).apic().apic_id(), kRescheduleVector);
    }
}

void Kvm::host_run_on_vcpu(HostThreadContext& h, Vcpu& v, std::function<void(Vcpu&)> work) {
    LogicalProcessor& p = m_platform.cpu(h.pcpu);
    p.step(Cost::HostSignalSend, "qemu_cpu_kick: pthread_kill(SIG_IPI) to the vCPU thread", "kernel/signal.c", "kvm");
    p.sync_for_shared_state();
    v.m_userspace_work.push_back(std::move(work));
    // signal_wake_up: a thread waiting in kvm_vcpu_block (TASK_INTERRUPTIBLE) is woken, a
    // halt poller sees the signal at its next check, one in guest mode gets the kick's IPI.
    kvm_vcpu_kick(source(h), v);
}

void Kvm::exit_to_userspace(Vcpu& v) {
    LogicalProcessor& p = lp(v);
    ++m_stat_userspace_exits;
    // vcpu_run: xfer_to_guest_mode_handle_work finds the signal, KVM_RUN returns -EINTR;
    // vcpu_put of a thread neither preempted nor blocking leaves the PID as it is (NV the
    // notification vector, SN clear): what is posted meanwhile waits in the PIR.
    vmx_vcpu_pi_put(v, false);
    p.step(Cost::HostKvmRunUserspace, "KVM_RUN returns to userspace (signal), then KVM_RUN again",
           "x86.c vcpu_run, kernel/entry/kvm.c", "kvm");
    std::vector<std::function<void(Vcpu&)>> work;
    work.swap(v.m_userspace_work);
    for (auto& w : work) w(v);
    vcpu_load(v);
}

void Kvm::userspace_sleep(Vcpu& v, double cycles) {
    LogicalProcessor& p = lp(v);
    HostScheduler& sched = *m_sched[v.m_pcpu];
    const double until = p.now_cycles() + cycles;
    sched.release(&v);
    const sc_core::sc_time at = p.clock().to_time(until);
    if (at > sc_core::sc_time_stamp()) sc_core::wait(at - sc_core::sc_time_stamp());
    sched.acquire(&v);
}

void Kvm::kvm_set_lapic_xapic_id(Vcpu& v, std::uint8_t id) {
    if (v.vm().x2apic())
        throw model::ConfigError(v.m_ctx.name + ": KVM_SET_LAPIC with APIC ID " + std::to_string(id) +
                                 " in x2APIC mode: KVM refuses an x2APIC ID other than the vCPU's (-EINVAL)");
    lp(v).step(Cost::KvmSetLapic, "ioctl(KVM_SET_LAPIC): kvm_apic_set_state", "lapic.c", "kvm");
    kvm_apic_set_xapic_id(v, id);
    v.m_req_event = true;  // kvm_apic_set_state: KVM_REQ_EVENT
}

void Kvm::host_call_function_single(HostThreadContext& h, unsigned pcpu) {
    LogicalProcessor& p = m_platform.cpu(h.pcpu);
    p.step(Cost::KvmSendIpiMask, "smp_call_function_single: send CALL_FUNCTION_SINGLE_VECTOR", "kernel/smp.c", "kvm");
    p.host_send_ipi(m_platform.cpu(pcpu).apic().apic_id(), kCallFunctionSingleVector);
}

}  // namespace vtx::vmm
