#pragma once
// The architectural state of one local APIC, as a plain value type: IA32_APIC_BASE and its
// mode transitions, the register file (xAPIC MMIO view and x2APIC MSR view), priorities,
// IRR/ISR/TMR, interrupt acceptance, INTA and EOI. No time: the SystemC module LocalApic
// (local_apic.hpp) wraps it and charges the costs.
//
// SDM Vol. 3A chapter 11 (chapter 10 in older editions): 11.4 (enable/disable, base MSR,
// state after reset / software disable / INIT), 11.5 (LVT, ESR, timer), 11.8 (priorities,
// IRR/ISR/TMR, EOI), 11.9 (spurious interrupt), 11.12 (x2APIC).
#include <array>
#include <cstdint>
#include <optional>

#include "apic/destination.hpp"
#include "apic/interrupt_message.hpp"
#include "apic/registers.hpp"

namespace vtx::apic {

// 256 vector bits laid out as the architectural registers: word i holds vectors 32i..32i+31.
class VectorBits {
public:
    void set(std::uint8_t v) {
        m_words[v / 32] |= 1u << (v % 32);
        m_nonzero |= 1u << (v / 32);
    }
    void clear(std::uint8_t v) {
        const unsigned i = v / 32;
        m_words[i] &= ~(1u << (v % 32));
        m_nonzero &= ~(static_cast<std::uint32_t>(m_words[i] == 0) << i);
    }
    bool test(std::uint8_t v) const { return (m_words[v / 32] >> (v % 32)) & 1u; }
    std::optional<std::uint8_t> highest() const {
        if (m_nonzero == 0) return std::nullopt;
        const unsigned i = 31u - static_cast<unsigned>(__builtin_clz(m_nonzero));
        const unsigned bit = 31u - static_cast<unsigned>(__builtin_clz(m_words[i]));
        return static_cast<std::uint8_t>(i * 32 + bit);
    }
    bool any() const { return m_nonzero != 0; }  // asked at every instruction boundary
    std::uint32_t word(std::size_t i) const { return m_words[i]; }
    void reset() {
        m_words.fill(0);
        m_nonzero = 0;
    }

private:
    std::array<std::uint32_t, kApicBitmapRegisters> m_words{};
    // Bit i set exactly when m_words[i] is not 0: any() and highest() without a scan.
    std::uint32_t m_nonzero = 0;
    static_assert(kApicBitmapRegisters <= 32, "one summary bit per word");
};

enum class ApicMode : std::uint8_t { Disabled, XApic, X2Apic };
const char* apic_mode_name(ApicMode m);

// Outcome of a register access.
enum class AccessStatus : std::uint8_t {
    Ok,
    GeneralProtection,  // x2APIC RDMSR/WRMSR fault, or an illegal IA32_APIC_BASE write
    NotClaimed,         // MMIO while the APIC is not in xAPIC mode: the access goes to memory
};

struct ReadResult {
    std::uint64_t value = 0;
    AccessStatus status = AccessStatus::Ok;
    bool ok() const { return status == AccessStatus::Ok; }
};

struct EoiResult {
    std::uint8_t vector = 0;        // the vector whose ISR bit was cleared
    bool level_triggered = false;   // its TMR bit was set
    bool broadcast = false;         // level-triggered and EOI-broadcast not suppressed (SVR[12])
};

// A register write, and what the module around the state has to do about it.
struct WriteResult {
    AccessStatus status = AccessStatus::Ok;
    std::optional<std::uint64_t> send_icr;  // ICR write: the ICR (64-bit form) to send
    std::optional<std::uint8_t> self_ipi;   // SELF IPI write: the vector to send to self
    std::optional<EoiResult> eoi;           // EOI write that cleared an ISR bit
    bool timer_started = false;             // initial count written: the timer (re)starts
    bool mode_changed = false;              // IA32_APIC_BASE changed EN or EXTD
    bool ok() const { return status == AccessStatus::Ok; }
};

// What the APIC did with a message it received (or a local interrupt source).
enum class AcceptOutcome : std::uint8_t {
    Accepted,                  // fixed / lowest priority: IRR bit set
    Coalesced,                 // fixed / lowest priority: IRR bit was already set
    NmiLatched,
    InitLatched,
    StartUpLatched,
    SmiLatched,
    RejectedHardwareDisabled,  // IA32_APIC_BASE.EN = 0: the APIC accepts nothing
    RejectedSoftwareDisabled,  // SVR[8] = 0: fixed / lowest priority not accepted
    RejectedIllegalVector,     // fixed / lowest priority with vector 0-15 (ESR bit 6)
    Ignored,                   // reserved delivery mode, masked LVT, ExtINT
};
const char* accept_outcome_name(AcceptOutcome o);
bool is_accepted(AcceptOutcome o);  // the message changed pending state (incl. coalesced)

class ApicState {
public:
    // Power-up / RESET state (SDM 11.12.5.1): enabled, xAPIC mode, base FEE00000H.
    explicit ApicState(std::uint32_t initial_apic_id = 0, bool bsp = false,
                       unsigned max_phys_addr = kDefaultMaxPhysAddr);

    // ---- IA32_APIC_BASE and modes (11.4.4, 11.12.5)
    std::uint64_t apic_base() const;
    // Legal: disabled->xAPIC, xAPIC->x2APIC, any->disabled, base/BSP changes within a mode.
    // #GP: reserved bits, EN=0 with EXTD=1, x2APIC->xAPIC, disabled->x2APIC.
    WriteResult write_apic_base(std::uint64_t value);
    ApicMode mode() const { return m_mode; }
    bool hardware_enabled() const { return m_mode != ApicMode::Disabled; }
    bool x2apic_mode() const { return m_mode == ApicMode::X2Apic; }
    bool software_enabled() const;  // hardware enabled and SVR[8] = 1
    bool bsp() const { return m_bsp; }
    std::uint64_t base_address() const { return m_base_address; }
    unsigned max_phys_addr() const { return m_max_phys_addr; }

    // ---- identification and logical addressing
    std::uint32_t apic_id() const;  // the ID physical destinations match: xAPIC or x2APIC ID
    std::uint32_t x2apic_id() const { return m_x2apic_id; }
    std::uint8_t xapic_id() const { return m_xapic_id; }
    std::uint32_t ldr() const;  // x2APIC: derived from the x2APIC ID
    std::uint32_t dfr() const { return m_dfr; }
    DestinationView destination_view() const;

    // ---- priorities (11.8.3)
    std::uint8_t tpr() const { return m_tpr; }
    void set_tpr(std::uint8_t tpr) { m_tpr = tpr; }  // MOV CR8 / register write
    std::uint8_t ppr() const;
    std::uint8_t apr() const;

    // ---- IRR / ISR / TMR
    const VectorBits& irr() const { return m_irr; }
    const VectorBits& isr() const { return m_isr; }
    const VectorBits& tmr() const { return m_tmr; }
    std::optional<std::uint8_t> highest_irr() const { return m_irr.highest(); }
    std::optional<std::uint8_t> highest_isr() const { return m_isr.highest(); }
    // A fixed / lowest-priority interrupt can be presented to the core: highest IRR class
    // above the PPR class, APIC hardware- and software-enabled.
    bool has_deliverable_interrupt() const {
        if (!m_irr.any()) return false;  // the common case, decided inline
        return has_deliverable_irr();
    }
    // INTA: moves the highest IRR vector to the ISR and returns it; with nothing
    // deliverable, returns the spurious vector (SVR[7:0]) and changes nothing (11.9).
    std::uint8_t acknowledge();
    // EOI: clears the highest ISR bit.
    std::optional<EoiResult> eoi();

    // ---- receiving
    AcceptOutcome accept(const InterruptMessage& msg);
    // A local interrupt source (timer, error, LINTn...) fires through its LVT entry.
    AcceptOutcome raise_local(Lvt lvt);
    // Records an error in the ESR (visible after the next ESR write) and signals the LVT
    // error entry if it is unmasked.
    void record_error(std::uint32_t esr_bits);

    // ---- events latched for the core
    bool nmi_pending() const { return m_nmi_pending; }
    void clear_nmi() { m_nmi_pending = false; }
    bool init_pending() const { return m_init_pending; }
    void clear_init() { m_init_pending = false; }
    bool sipi_pending() const { return m_sipi_pending; }
    std::uint8_t sipi_vector() const { return m_sipi_vector; }
    void clear_sipi() { m_sipi_pending = false; }
    bool smi_pending() const { return m_smi_pending; }
    void clear_smi() { m_smi_pending = false; }

    // ---- register file
    // xAPIC MMIO (offset in the 4-KByte APIC page, 32-bit access). NotClaimed unless in
    // xAPIC mode. Reserved offsets read 0, ignore writes and set ESR[7].
    ReadResult read_mmio(std::uint32_t offset);
    WriteResult write_mmio(std::uint32_t offset, std::uint32_t value);
    // RDMSR / WRMSR of IA32_APIC_BASE or of an x2APIC register (800H-BFFH); any other MSR
    // number raises #GP (it is not an APIC MSR).
    ReadResult read_msr(std::uint32_t msr);
    WriteResult write_msr(std::uint32_t msr, std::uint64_t value);

    std::uint64_t icr() const { return m_icr; }
    std::uint32_t svr() const { return m_svr; }
    std::uint8_t spurious_vector() const { return static_cast<std::uint8_t>(m_svr & kSvrVectorMask); }
    std::uint32_t lvt(Lvt lvt) const { return m_lvt[static_cast<std::size_t>(lvt)]; }
    std::uint32_t esr() const { return m_esr; }
    std::uint32_t timer_initial_count() const { return m_timer_initial; }
    std::uint32_t timer_divide_config() const { return m_timer_divide; }
    std::uint32_t timer_current_count() const { return m_timer_current; }
    // The module that runs the timer keeps the current count up to date.
    void set_timer_current_count(std::uint32_t v) { m_timer_current = v; }

    // INIT (11.4.7.3): every register to its reset value except the APIC IDs;
    // IA32_APIC_BASE and the mode are unchanged.
    void init_reset();

private:
    bool has_deliverable_irr() const;
    ReadResult read_register(std::uint32_t offset, bool x2apic);
    WriteResult write_register(std::uint32_t offset, std::uint64_t value, bool x2apic);
    void reset_registers();
    void set_irr(std::uint8_t vector, TriggerMode trigger);
    AcceptOutcome accept_fixed(std::uint8_t vector, TriggerMode trigger);

    ApicMode m_mode = ApicMode::XApic;
    bool m_bsp = false;
    std::uint64_t m_base_address = kApicDefaultBaseAddress;
    unsigned m_max_phys_addr = kDefaultMaxPhysAddr;
    std::uint32_t m_x2apic_id = 0;  // initialized by hardware, read-only
    std::uint8_t m_xapic_id = 0;    // writable in xAPIC mode

    std::uint8_t m_tpr = 0;
    std::uint32_t m_ldr = 0;  // xAPIC LDR (x2APIC LDR is derived)
    std::uint32_t m_dfr = kDfrResetValue;
    std::uint32_t m_svr = kSvrResetValue;
    VectorBits m_irr, m_isr, m_tmr;
    std::uint32_t m_esr = 0;          // what software reads
    std::uint32_t m_esr_pending = 0;  // errors since the last ESR write
    std::array<std::uint32_t, kApicLvtCount> m_lvt{};
    std::uint64_t m_icr = 0;
    std::uint32_t m_timer_initial = 0, m_timer_current = 0, m_timer_divide = 0;

    bool m_nmi_pending = false, m_init_pending = false, m_sipi_pending = false,
         m_smi_pending = false;
    std::uint8_t m_sipi_vector = 0;
};

}  // namespace vtx::apic
