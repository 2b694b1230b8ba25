#pragma once
// VMX control bits (architectural bit positions). Sources: SDM Vol. 3 "VM-Execution Control
// Fields" / "VM-Exit Control Fields" / "VM-Entry Control Fields"; Linux asm/vmx.h and
// asm/vmxfeatures.h (word*32+bit); tertiary bits from Xen "tertiary execution control
// infrastructure" and Bochs vmx_ctrls.h (reference vtx-semantics.md section 1.1).
#include <cstdint>

namespace vtx::vmcs {

constexpr std::uint32_t bit32(unsigned n) { return std::uint32_t{1} << n; }
constexpr std::uint64_t bit64(unsigned n) { return std::uint64_t{1} << n; }

// --- Pin-based VM-execution controls (VMCS 0x4000) ---
inline constexpr std::uint32_t kPinExternalInterruptExiting = bit32(0);
inline constexpr std::uint32_t kPinNmiExiting = bit32(3);
inline constexpr std::uint32_t kPinVirtualNmis = bit32(5);
inline constexpr std::uint32_t kPinActivatePreemptionTimer = bit32(6);
inline constexpr std::uint32_t kPinProcessPostedInterrupts = bit32(7);
// Reserved bits that are 1 in the default setting (SDM Appendix A.3.1).
inline constexpr std::uint32_t kPinDefault1 = bit32(1) | bit32(2) | bit32(4);
static_assert(kPinDefault1 == 0x00000016, "Linux PIN_BASED_ALWAYSON_WITHOUT_TRUE_MSR");

// --- Primary processor-based VM-execution controls (VMCS 0x4002) ---
inline constexpr std::uint32_t kPrimaryInterruptWindowExiting = bit32(2);
inline constexpr std::uint32_t kPrimaryUseTscOffsetting = bit32(3);
inline constexpr std::uint32_t kPrimaryHltExiting = bit32(7);
inline constexpr std::uint32_t kPrimaryInvlpgExiting = bit32(9);
inline constexpr std::uint32_t kPrimaryMwaitExiting = bit32(10);
inline constexpr std::uint32_t kPrimaryRdpmcExiting = bit32(11);
inline constexpr std::uint32_t kPrimaryRdtscExiting = bit32(12);
inline constexpr std::uint32_t kPrimaryCr3LoadExiting = bit32(15);
inline constexpr std::uint32_t kPrimaryCr3StoreExiting = bit32(16);
inline constexpr std::uint32_t kPrimaryActivateTertiaryControls = bit32(17);
inline constexpr std::uint32_t kPrimaryCr8LoadExiting = bit32(19);
inline constexpr std::uint32_t kPrimaryCr8StoreExiting = bit32(20);
inline constexpr std::uint32_t kPrimaryUseTprShadow = bit32(21);
inline constexpr std::uint32_t kPrimaryNmiWindowExiting = bit32(22);
inline constexpr std::uint32_t kPrimaryMovDrExiting = bit32(23);
inline constexpr std::uint32_t kPrimaryUnconditionalIoExiting = bit32(24);
inline constexpr std::uint32_t kPrimaryUseIoBitmaps = bit32(25);
inline constexpr std::uint32_t kPrimaryMonitorTrapFlag = bit32(27);
inline constexpr std::uint32_t kPrimaryUseMsrBitmaps = bit32(28);
inline constexpr std::uint32_t kPrimaryMonitorExiting = bit32(29);
inline constexpr std::uint32_t kPrimaryPauseExiting = bit32(30);
inline constexpr std::uint32_t kPrimaryActivateSecondaryControls = bit32(31);
// Default1 bits (SDM A.3.2): 1, 4-6, 8, 13-16, 26.
inline constexpr std::uint32_t kPrimaryDefault1 =
    bit32(1) | bit32(4) | bit32(5) | bit32(6) | bit32(8) | bit32(13) | bit32(14) |
    kPrimaryCr3LoadExiting | kPrimaryCr3StoreExiting | bit32(26);
static_assert(kPrimaryDefault1 == 0x0401E172, "Linux CPU_BASED_ALWAYSON_WITHOUT_TRUE_MSR");

// --- Secondary processor-based VM-execution controls (VMCS 0x401E) ---
inline constexpr std::uint32_t kSecondaryVirtualizeApicAccesses = bit32(0);
inline constexpr std::uint32_t kSecondaryEnableEpt = bit32(1);
inline constexpr std::uint32_t kSecondaryDescriptorTableExiting = bit32(2);
inline constexpr std::uint32_t kSecondaryEnableRdtscp = bit32(3);
inline constexpr std::uint32_t kSecondaryVirtualizeX2apicMode = bit32(4);
inline constexpr std::uint32_t kSecondaryEnableVpid = bit32(5);
inline constexpr std::uint32_t kSecondaryWbinvdExiting = bit32(6);
inline constexpr std::uint32_t kSecondaryUnrestrictedGuest = bit32(7);
inline constexpr std::uint32_t kSecondaryApicRegisterVirtualization = bit32(8);
inline constexpr std::uint32_t kSecondaryVirtualInterruptDelivery = bit32(9);
inline constexpr std::uint32_t kSecondaryPauseLoopExiting = bit32(10);
inline constexpr std::uint32_t kSecondaryRdrandExiting = bit32(11);
inline constexpr std::uint32_t kSecondaryEnableInvpcid = bit32(12);
inline constexpr std::uint32_t kSecondaryEnableVmFunctions = bit32(13);
inline constexpr std::uint32_t kSecondaryVmcsShadowing = bit32(14);
inline constexpr std::uint32_t kSecondaryEnclsExiting = bit32(15);
inline constexpr std::uint32_t kSecondaryRdseedExiting = bit32(16);
inline constexpr std::uint32_t kSecondaryEnablePml = bit32(17);
inline constexpr std::uint32_t kSecondaryEptViolationVe = bit32(18);
inline constexpr std::uint32_t kSecondaryConcealVmxFromPt = bit32(19);
inline constexpr std::uint32_t kSecondaryEnableXsaves = bit32(20);
inline constexpr std::uint32_t kSecondaryModeBasedEptExecute = bit32(22);
inline constexpr std::uint32_t kSecondaryUseTscScaling = bit32(25);

// --- Tertiary processor-based VM-execution controls (VMCS 0x2034, 64 bits) ---
inline constexpr std::uint64_t kTertiaryLoadiwkeyExiting = bit64(0);
inline constexpr std::uint64_t kTertiaryEnableHlat = bit64(1);
inline constexpr std::uint64_t kTertiaryEptPagingWrite = bit64(2);
inline constexpr std::uint64_t kTertiaryGuestPagingVerification = bit64(3);
inline constexpr std::uint64_t kTertiaryIpiVirt = bit64(4);        // Linux TERTIARY_EXEC_IPI_VIRT
inline constexpr std::uint64_t kTertiaryEnableMsrlist = bit64(6);  // Bochs vmx_ctrls.h
inline constexpr std::uint64_t kTertiaryVirtualizeSpecCtrl = bit64(7);
inline constexpr std::uint64_t kTertiaryApicTimerVirtualization = bit64(8);

// --- Primary VM-exit controls (VMCS 0x400C) ---
inline constexpr std::uint32_t kExitSaveDebugControls = bit32(2);
inline constexpr std::uint32_t kExitHostAddressSpaceSize = bit32(9);
inline constexpr std::uint32_t kExitLoadPerfGlobalCtrl = bit32(12);
inline constexpr std::uint32_t kExitAcknowledgeInterruptOnExit = bit32(15);
inline constexpr std::uint32_t kExitSavePat = bit32(18);
inline constexpr std::uint32_t kExitLoadPat = bit32(19);
inline constexpr std::uint32_t kExitSaveEfer = bit32(20);
inline constexpr std::uint32_t kExitLoadEfer = bit32(21);
inline constexpr std::uint32_t kExitSavePreemptionTimer = bit32(22);
inline constexpr std::uint32_t kExitClearBndcfgs = bit32(23);
inline constexpr std::uint32_t kExitConcealVmxFromPt = bit32(24);
inline constexpr std::uint32_t kExitClearRtitCtl = bit32(25);
inline constexpr std::uint32_t kExitActivateSecondaryControls = bit32(31);
// Default1 bits (SDM A.4.1): 0-8, 10, 11, 13, 14, 16, 17.
inline constexpr std::uint32_t kExitDefault1 =
    bit32(0) | bit32(1) | kExitSaveDebugControls | bit32(3) | bit32(4) | bit32(5) | bit32(6) |
    bit32(7) | bit32(8) | bit32(10) | bit32(11) | bit32(13) | bit32(14) | bit32(16) | bit32(17);
static_assert(kExitDefault1 == 0x00036DFF, "Linux VM_EXIT_ALWAYSON_WITHOUT_TRUE_MSR");

// --- VM-entry controls (VMCS 0x4012) ---
inline constexpr std::uint32_t kEntryLoadDebugControls = bit32(2);
inline constexpr std::uint32_t kEntryIa32eModeGuest = bit32(9);
inline constexpr std::uint32_t kEntryToSmm = bit32(10);
inline constexpr std::uint32_t kEntryDeactivateDualMonitor = bit32(11);
inline constexpr std::uint32_t kEntryLoadPerfGlobalCtrl = bit32(13);
inline constexpr std::uint32_t kEntryLoadPat = bit32(14);
inline constexpr std::uint32_t kEntryLoadEfer = bit32(15);
inline constexpr std::uint32_t kEntryLoadBndcfgs = bit32(16);
inline constexpr std::uint32_t kEntryConcealVmxFromPt = bit32(17);
inline constexpr std::uint32_t kEntryLoadRtitCtl = bit32(18);
// Default1 bits (SDM A.5): 0-8, 12.
inline constexpr std::uint32_t kEntryDefault1 = bit32(0) | bit32(1) | kEntryLoadDebugControls |
                                                bit32(3) | bit32(4) | bit32(5) | bit32(6) |
                                                bit32(7) | bit32(8) | bit32(12);
static_assert(kEntryDefault1 == 0x000011FF, "Linux VM_ENTRY_ALWAYSON_WITHOUT_TRUE_MSR");

// --- VM-function controls (VMCS 0x2018) ---
inline constexpr std::uint64_t kVmfuncEptpSwitching = bit64(0);

// --- TPR threshold (VMCS 0x401C) and guest interrupt status (VMCS 0x0810) ---
inline constexpr std::uint32_t kTprThresholdMask = 0xF;  // bits 3:0 are the threshold
inline constexpr std::uint32_t kTprThresholdReservedBits = ~kTprThresholdMask;  // bits 31:4
inline constexpr std::uint16_t kGuestIntrStatusRviMask = 0x00FF;                // RVI = bits 7:0
inline constexpr unsigned kGuestIntrStatusSviShift = 8;                         // SVI = bits 15:8
inline constexpr std::uint16_t kPostedIntrNvReservedBits = 0xFF00;  // NV bits 15:8 must be 0

// --- EPT pointer (VMCS 0x201A), SDM "Extended-Page-Table Pointer (EPTP)" ---
inline constexpr std::uint64_t kEptpMemoryTypeMask = 0x7;  // bits 2:0
inline constexpr std::uint64_t kEptMemoryTypeUc = 0;
inline constexpr std::uint64_t kEptMemoryTypeWb = 6;
inline constexpr unsigned kEptpPageWalkShift = 3;  // bits 5:3 = walk length - 1
inline constexpr std::uint64_t kEptpPageWalkMask = std::uint64_t{0x7} << kEptpPageWalkShift;
inline constexpr std::uint64_t kEptpPageWalk4 = std::uint64_t{4 - 1} << kEptpPageWalkShift;
inline constexpr std::uint64_t kEptpPageWalk5 = std::uint64_t{5 - 1} << kEptpPageWalkShift;
inline constexpr std::uint64_t kEptpAccessedDirtyEnable = bit64(6);
inline constexpr std::uint64_t kEptpReservedLowBits = 0xF80;  // bits 11:7

}  // namespace vtx::vmcs
