#pragma once
// Shared fixtures for the vmcs/ tests: the two reference feature sets and a VMCS that is
// configured like KVM with full APICv (and IPIv when available) and passes every control
// check, so that each test can break exactly one rule.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "model/features.hpp"
#include "vmcs/capabilities.hpp"
#include "vmcs/controls.hpp"
#include "vmcs/entry_checks.hpp"
#include "vmcs/vmcs.hpp"

namespace vtx::vmcs::testing {

// A processor with tertiary controls and IPI virtualization (Sapphire Rapids-like).
inline model::CpuFeatures ipiv_features() {
    model::CpuFeatures f;
    f.tertiary_controls = true;
    f.ipi_virtualization = true;
    return f;
}

// A processor without tertiary controls (pre-IPIv APICv, e.g. Ice Lake-like).
inline model::CpuFeatures no_tertiary_features() {
    model::CpuFeatures f;
    f.tertiary_controls = false;
    f.ipi_virtualization = false;
    return f;
}

// Physical addresses used by the fixture VMCS (all properly aligned).
inline constexpr std::uint64_t kIoBitmapAPage = 0x0010'0000;
inline constexpr std::uint64_t kIoBitmapBPage = 0x0010'1000;
inline constexpr std::uint64_t kMsrBitmapPage = 0x0010'2000;
inline constexpr std::uint64_t kVirtualApicPage = 0x0010'3000;
inline constexpr std::uint64_t kApicAccessPage = 0xFEE0'0000;
inline constexpr std::uint64_t kPidAddress = 0x0010'4040;  // 64-byte aligned
inline constexpr std::uint64_t kPidTablePage = 0x0010'5000;
inline constexpr std::uint64_t kEptRootPage = 0x0010'6000;
inline constexpr std::uint64_t kMsrAreaAddress = 0x0010'7010;  // 16-byte aligned
inline constexpr std::uint16_t kNotificationVector = 0xF2;     // Linux POSTED_INTR_VECTOR
inline constexpr std::uint16_t kLastPidIndex = 7;
inline constexpr std::uint16_t kTestVpid = 1;

inline void must_write(Vmcs& vmcs, Field f, std::uint64_t value) {
    if (!vmcs.vmwrite(f, value).succeeded())
        throw std::logic_error("fixture VMWRITE failed: " + std::string(field_name(f)));
}

// For fields that exist only with some feature: a processor without it has no such field.
inline void write_if_supported(Vmcs& vmcs, Field f, std::uint64_t value) {
    if (vmcs.supports(f)) must_write(vmcs, f, value);
}

// Full APICv like KVM: external-interrupt exiting, NMI exiting + virtual NMIs, posted
// interrupts, TPR shadow, MSR bitmaps, virtualize APIC accesses, APIC-register
// virtualization, virtual-interrupt delivery, EPT, VPID; IPIv when the processor has it.
inline Vmcs make_apicv_vmcs(const model::CpuFeatures& f, const VmxCapabilities& caps) {
    Vmcs vmcs{f};
    const bool ipiv = f.tertiary_controls && f.ipi_virtualization;
    must_write(vmcs, Field::PinBasedVmExecControl,
               caps.pin_based().allowed0 | kPinExternalInterruptExiting | kPinNmiExiting |
                   kPinVirtualNmis | kPinProcessPostedInterrupts);
    must_write(vmcs, Field::CpuBasedVmExecControl,
               caps.primary().allowed0 | kPrimaryHltExiting | kPrimaryUseTprShadow |
                   kPrimaryUseMsrBitmaps | kPrimaryActivateSecondaryControls |
                   (ipiv ? kPrimaryActivateTertiaryControls : 0u));
    write_if_supported(vmcs, Field::SecondaryVmExecControl,
                       kSecondaryVirtualizeApicAccesses | kSecondaryEnableEpt |
                           kSecondaryEnableVpid | kSecondaryUnrestrictedGuest |
                           kSecondaryApicRegisterVirtualization |
                           kSecondaryVirtualInterruptDelivery);
    if (ipiv) {
        must_write(vmcs, Field::TertiaryVmExecControl, kTertiaryIpiVirt);
        must_write(vmcs, Field::PidPointerTable, kPidTablePage);
        must_write(vmcs, Field::LastPidPointerIndex, kLastPidIndex);
    }
    must_write(vmcs, Field::VmExitControls,
               caps.exit().allowed0 | kExitHostAddressSpaceSize | kExitAcknowledgeInterruptOnExit);
    must_write(vmcs, Field::VmEntryControls, caps.entry().allowed0 | kEntryIa32eModeGuest);
    write_if_supported(vmcs, Field::VirtualProcessorId, kTestVpid);
    write_if_supported(vmcs, Field::EptPointer, kEptRootPage | kEptMemoryTypeWb | kEptpPageWalk4);
    write_if_supported(vmcs, Field::PostedIntrNv, kNotificationVector);
    write_if_supported(vmcs, Field::PostedIntrDescAddr, kPidAddress);
    write_if_supported(vmcs, Field::VirtualApicPageAddr, kVirtualApicPage);
    write_if_supported(vmcs, Field::ApicAccessAddr, kApicAccessPage);
    write_if_supported(vmcs, Field::MsrBitmap, kMsrBitmapPage);
    must_write(vmcs, Field::IoBitmapA, kIoBitmapAPage);
    must_write(vmcs, Field::IoBitmapB, kIoBitmapBPage);
    write_if_supported(vmcs, Field::TprThreshold, 0);
    must_write(vmcs, Field::GuestCr0, kCr0Pe | kCr0Ne | kCr0Pg);
    return vmcs;
}

// A VTPR reader returning a fixed byte and remembering the address it was asked for.
struct FakeVtpr {
    std::uint8_t value = 0;
    std::uint64_t last_address = 0;
    int reads = 0;
    VtprReader reader() {
        return [this](std::uint64_t address) {
            last_address = address;
            ++reads;
            return value;
        };
    }
};

inline std::uint32_t read32(const Vmcs& vmcs, Field f) {
    return static_cast<std::uint32_t>(vmcs.hw_read(f));
}

}  // namespace vtx::vmcs::testing
