#pragma once
// The VMCS fields vtxsim knows, as one table: X(EnumName, "NAME", encoding, Requirement).
// Encodings are the architectural ones (SDM Appendix B; Linux asm/vmx.h enum vmcs_field,
// whose names are used as the user-visible names). The list is sorted by encoding
// (checked at compile time in fields.cpp). Requirement names the feature without which the
// field does not exist (SDM Appendix B footnotes), see FieldRequirement in fields.hpp.
// Natural-width fields are 64 bits wide: vtxsim models processors that support Intel 64.

// clang-format off
#define VTX_VMCS_FIELD_LIST(X)                                                              \
    /* 16-bit control fields (0x0000) */                                                  \
    X(VirtualProcessorId,        "VIRTUAL_PROCESSOR_ID",        0x0000, Vpid)             \
    X(PostedIntrNv,              "POSTED_INTR_NV",              0x0002, PostedInterrupts) \
    X(LastPidPointerIndex,       "LAST_PID_POINTER_INDEX",      0x0008, IpiVirtualization)\
    /* 16-bit guest-state fields (0x0800) */                                              \
    X(GuestEsSelector,           "GUEST_ES_SELECTOR",           0x0800, None)             \
    X(GuestCsSelector,           "GUEST_CS_SELECTOR",           0x0802, None)             \
    X(GuestSsSelector,           "GUEST_SS_SELECTOR",           0x0804, None)             \
    X(GuestDsSelector,           "GUEST_DS_SELECTOR",           0x0806, None)             \
    X(GuestFsSelector,           "GUEST_FS_SELECTOR",           0x0808, None)             \
    X(GuestGsSelector,           "GUEST_GS_SELECTOR",           0x080A, None)             \
    X(GuestLdtrSelector,         "GUEST_LDTR_SELECTOR",         0x080C, None)             \
    X(GuestTrSelector,           "GUEST_TR_SELECTOR",           0x080E, None)             \
    X(GuestIntrStatus,           "GUEST_INTR_STATUS",           0x0810, VirtualInterruptDelivery) \
    /* 16-bit host-state fields (0x0C00) */                                               \
    X(HostEsSelector,            "HOST_ES_SELECTOR",            0x0C00, None)             \
    X(HostCsSelector,            "HOST_CS_SELECTOR",            0x0C02, None)             \
    X(HostSsSelector,            "HOST_SS_SELECTOR",            0x0C04, None)             \
    X(HostDsSelector,            "HOST_DS_SELECTOR",            0x0C06, None)             \
    X(HostFsSelector,            "HOST_FS_SELECTOR",            0x0C08, None)             \
    X(HostGsSelector,            "HOST_GS_SELECTOR",            0x0C0A, None)             \
    X(HostTrSelector,            "HOST_TR_SELECTOR",            0x0C0C, None)             \
    /* 64-bit control fields (0x2000) */                                                  \
    X(IoBitmapA,                 "IO_BITMAP_A",                 0x2000, None)             \
    X(IoBitmapB,                 "IO_BITMAP_B",                 0x2002, None)             \
    X(MsrBitmap,                 "MSR_BITMAP",                  0x2004, MsrBitmaps)       \
    X(VmExitMsrStoreAddr,        "VM_EXIT_MSR_STORE_ADDR",      0x2006, None)             \
    X(VmExitMsrLoadAddr,         "VM_EXIT_MSR_LOAD_ADDR",       0x2008, None)             \
    X(VmEntryMsrLoadAddr,        "VM_ENTRY_MSR_LOAD_ADDR",      0x200A, None)             \
    X(ExecutiveVmcsPointer,      "EXECUTIVE_VMCS_POINTER",      0x200C, None)             \
    X(TscOffset,                 "TSC_OFFSET",                  0x2010, None)             \
    X(VirtualApicPageAddr,       "VIRTUAL_APIC_PAGE_ADDR",      0x2012, TprShadow)        \
    X(ApicAccessAddr,            "APIC_ACCESS_ADDR",            0x2014, VirtualizeApicAccesses) \
    X(PostedIntrDescAddr,        "POSTED_INTR_DESC_ADDR",       0x2016, PostedInterrupts) \
    X(VmFunctionControl,         "VM_FUNCTION_CONTROL",         0x2018, VmFunctions)      \
    X(EptPointer,                "EPT_POINTER",                 0x201A, Ept)              \
    X(EoiExitBitmap0,            "EOI_EXIT_BITMAP0",            0x201C, VirtualInterruptDelivery) \
    X(EoiExitBitmap1,            "EOI_EXIT_BITMAP1",            0x201E, VirtualInterruptDelivery) \
    X(EoiExitBitmap2,            "EOI_EXIT_BITMAP2",            0x2020, VirtualInterruptDelivery) \
    X(EoiExitBitmap3,            "EOI_EXIT_BITMAP3",            0x2022, VirtualInterruptDelivery) \
    X(EptpListAddress,           "EPTP_LIST_ADDRESS",           0x2024, EptpSwitching)    \
    X(TertiaryVmExecControl,     "TERTIARY_VM_EXEC_CONTROL",    0x2034, TertiaryControls) \
    X(PidPointerTable,           "PID_POINTER_TABLE",           0x2042, IpiVirtualization)\
    X(SecondaryVmExitControls,   "SECONDARY_VM_EXIT_CONTROLS",  0x2044, SecondaryExitControls) \
    /* 64-bit read-only data field (0x2400) */                                            \
    X(GuestPhysicalAddress,      "GUEST_PHYSICAL_ADDRESS",      0x2400, Ept)              \
    /* 64-bit guest-state fields (0x2800) */                                              \
    X(VmcsLinkPointer,           "VMCS_LINK_POINTER",           0x2800, None)             \
    X(GuestIa32Debugctl,         "GUEST_IA32_DEBUGCTL",         0x2802, None)             \
    X(GuestIa32Pat,              "GUEST_IA32_PAT",              0x2804, None)             \
    X(GuestIa32Efer,             "GUEST_IA32_EFER",             0x2806, None)             \
    X(GuestIa32PerfGlobalCtrl,   "GUEST_IA32_PERF_GLOBAL_CTRL", 0x2808, None)             \
    X(GuestPdptr0,               "GUEST_PDPTR0",                0x280A, Ept)              \
    X(GuestPdptr1,               "GUEST_PDPTR1",                0x280C, Ept)              \
    X(GuestPdptr2,               "GUEST_PDPTR2",                0x280E, Ept)              \
    X(GuestPdptr3,               "GUEST_PDPTR3",                0x2810, Ept)              \
    /* 64-bit host-state fields (0x2C00) */                                               \
    X(HostIa32Pat,               "HOST_IA32_PAT",               0x2C00, None)             \
    X(HostIa32Efer,              "HOST_IA32_EFER",              0x2C02, None)             \
    X(HostIa32PerfGlobalCtrl,    "HOST_IA32_PERF_GLOBAL_CTRL",  0x2C04, None)             \
    /* 32-bit control fields (0x4000) */                                                  \
    X(PinBasedVmExecControl,     "PIN_BASED_VM_EXEC_CONTROL",   0x4000, None)             \
    X(CpuBasedVmExecControl,     "CPU_BASED_VM_EXEC_CONTROL",   0x4002, None)             \
    X(ExceptionBitmap,           "EXCEPTION_BITMAP",            0x4004, None)             \
    X(PageFaultErrorCodeMask,    "PAGE_FAULT_ERROR_CODE_MASK",  0x4006, None)             \
    X(PageFaultErrorCodeMatch,   "PAGE_FAULT_ERROR_CODE_MATCH", 0x4008, None)             \
    X(Cr3TargetCount,            "CR3_TARGET_COUNT",            0x400A, None)             \
    X(VmExitControls,            "VM_EXIT_CONTROLS",            0x400C, None)             \
    X(VmExitMsrStoreCount,       "VM_EXIT_MSR_STORE_COUNT",     0x400E, None)             \
    X(VmExitMsrLoadCount,        "VM_EXIT_MSR_LOAD_COUNT",      0x4010, None)             \
    X(VmEntryControls,           "VM_ENTRY_CONTROLS",           0x4012, None)             \
    X(VmEntryMsrLoadCount,       "VM_ENTRY_MSR_LOAD_COUNT",     0x4014, None)             \
    X(VmEntryIntrInfoField,      "VM_ENTRY_INTR_INFO_FIELD",    0x4016, None)             \
    X(VmEntryExceptionErrorCode, "VM_ENTRY_EXCEPTION_ERROR_CODE", 0x4018, None)           \
    X(VmEntryInstructionLen,     "VM_ENTRY_INSTRUCTION_LEN",    0x401A, None)             \
    X(TprThreshold,              "TPR_THRESHOLD",               0x401C, TprShadow)        \
    X(SecondaryVmExecControl,    "SECONDARY_VM_EXEC_CONTROL",   0x401E, SecondaryControls)\
    /* 32-bit read-only data fields (0x4400) */                                           \
    X(VmInstructionError,        "VM_INSTRUCTION_ERROR",        0x4400, None)             \
    X(VmExitReason,              "VM_EXIT_REASON",              0x4402, None)             \
    X(VmExitIntrInfo,            "VM_EXIT_INTR_INFO",           0x4404, None)             \
    X(VmExitIntrErrorCode,       "VM_EXIT_INTR_ERROR_CODE",     0x4406, None)             \
    X(IdtVectoringInfoField,     "IDT_VECTORING_INFO_FIELD",    0x4408, None)             \
    X(IdtVectoringErrorCode,     "IDT_VECTORING_ERROR_CODE",    0x440A, None)             \
    X(VmExitInstructionLen,      "VM_EXIT_INSTRUCTION_LEN",     0x440C, None)             \
    X(VmxInstructionInfo,        "VMX_INSTRUCTION_INFO",        0x440E, None)             \
    /* 32-bit guest-state fields (0x4800) */                                              \
    X(GuestEsLimit,              "GUEST_ES_LIMIT",              0x4800, None)             \
    X(GuestCsLimit,              "GUEST_CS_LIMIT",              0x4802, None)             \
    X(GuestSsLimit,              "GUEST_SS_LIMIT",              0x4804, None)             \
    X(GuestDsLimit,              "GUEST_DS_LIMIT",              0x4806, None)             \
    X(GuestFsLimit,              "GUEST_FS_LIMIT",              0x4808, None)             \
    X(GuestGsLimit,              "GUEST_GS_LIMIT",              0x480A, None)             \
    X(GuestLdtrLimit,            "GUEST_LDTR_LIMIT",            0x480C, None)             \
    X(GuestTrLimit,              "GUEST_TR_LIMIT",              0x480E, None)             \
    X(GuestGdtrLimit,            "GUEST_GDTR_LIMIT",            0x4810, None)             \
    X(GuestIdtrLimit,            "GUEST_IDTR_LIMIT",            0x4812, None)             \
    X(GuestEsArBytes,            "GUEST_ES_AR_BYTES",           0x4814, None)             \
    X(GuestCsArBytes,            "GUEST_CS_AR_BYTES",           0x4816, None)             \
    X(GuestSsArBytes,            "GUEST_SS_AR_BYTES",           0x4818, None)             \
    X(GuestDsArBytes,            "GUEST_DS_AR_BYTES",           0x481A, None)             \
    X(GuestFsArBytes,            "GUEST_FS_AR_BYTES",           0x481C, None)             \
    X(GuestGsArBytes,            "GUEST_GS_AR_BYTES",           0x481E, None)             \
    X(GuestLdtrArBytes,          "GUEST_LDTR_AR_BYTES",         0x4820, None)             \
    X(GuestTrArBytes,            "GUEST_TR_AR_BYTES",           0x4822, None)             \
    X(GuestInterruptibilityInfo, "GUEST_INTERRUPTIBILITY_INFO", 0x4824, None)             \
    X(GuestActivityState,        "GUEST_ACTIVITY_STATE",        0x4826, None)             \
    X(GuestSmbase,               "GUEST_SMBASE",                0x4828, None)             \
    X(GuestSysenterCs,           "GUEST_SYSENTER_CS",           0x482A, None)             \
    X(VmxPreemptionTimerValue,   "VMX_PREEMPTION_TIMER_VALUE",  0x482E, PreemptionTimer)  \
    /* 32-bit host-state field (0x4C00) */                                                \
    X(HostIa32SysenterCs,        "HOST_IA32_SYSENTER_CS",       0x4C00, None)             \
    /* natural-width control fields (0x6000) */                                           \
    X(Cr0GuestHostMask,          "CR0_GUEST_HOST_MASK",         0x6000, None)             \
    X(Cr4GuestHostMask,          "CR4_GUEST_HOST_MASK",         0x6002, None)             \
    X(Cr0ReadShadow,             "CR0_READ_SHADOW",             0x6004, None)             \
    X(Cr4ReadShadow,             "CR4_READ_SHADOW",             0x6006, None)             \
    X(Cr3TargetValue0,           "CR3_TARGET_VALUE0",           0x6008, None)             \
    X(Cr3TargetValue1,           "CR3_TARGET_VALUE1",           0x600A, None)             \
    X(Cr3TargetValue2,           "CR3_TARGET_VALUE2",           0x600C, None)             \
    X(Cr3TargetValue3,           "CR3_TARGET_VALUE3",           0x600E, None)             \
    /* natural-width read-only data fields (0x6400) */                                    \
    X(ExitQualification,         "EXIT_QUALIFICATION",          0x6400, None)             \
    X(IoRcx,                     "IO_RCX",                      0x6402, None)             \
    X(IoRsi,                     "IO_RSI",                      0x6404, None)             \
    X(IoRdi,                     "IO_RDI",                      0x6406, None)             \
    X(IoRip,                     "IO_RIP",                      0x6408, None)             \
    X(GuestLinearAddress,        "GUEST_LINEAR_ADDRESS",        0x640A, None)             \
    /* natural-width guest-state fields (0x6800) */                                       \
    X(GuestCr0,                  "GUEST_CR0",                   0x6800, None)             \
    X(GuestCr3,                  "GUEST_CR3",                   0x6802, None)             \
    X(GuestCr4,                  "GUEST_CR4",                   0x6804, None)             \
    X(GuestEsBase,               "GUEST_ES_BASE",               0x6806, None)             \
    X(GuestCsBase,               "GUEST_CS_BASE",               0x6808, None)             \
    X(GuestSsBase,               "GUEST_SS_BASE",               0x680A, None)             \
    X(GuestDsBase,               "GUEST_DS_BASE",               0x680C, None)             \
    X(GuestFsBase,               "GUEST_FS_BASE",               0x680E, None)             \
    X(GuestGsBase,               "GUEST_GS_BASE",               0x6810, None)             \
    X(GuestLdtrBase,             "GUEST_LDTR_BASE",             0x6812, None)             \
    X(GuestTrBase,               "GUEST_TR_BASE",               0x6814, None)             \
    X(GuestGdtrBase,             "GUEST_GDTR_BASE",             0x6816, None)             \
    X(GuestIdtrBase,             "GUEST_IDTR_BASE",             0x6818, None)             \
    X(GuestDr7,                  "GUEST_DR7",                   0x681A, None)             \
    X(GuestRsp,                  "GUEST_RSP",                   0x681C, None)             \
    X(GuestRip,                  "GUEST_RIP",                   0x681E, None)             \
    X(GuestRflags,               "GUEST_RFLAGS",                0x6820, None)             \
    X(GuestPendingDbgExceptions, "GUEST_PENDING_DBG_EXCEPTIONS", 0x6822, None)            \
    X(GuestSysenterEsp,          "GUEST_SYSENTER_ESP",          0x6824, None)             \
    X(GuestSysenterEip,          "GUEST_SYSENTER_EIP",          0x6826, None)             \
    /* natural-width host-state fields (0x6C00) */                                        \
    X(HostCr0,                   "HOST_CR0",                    0x6C00, None)             \
    X(HostCr3,                   "HOST_CR3",                    0x6C02, None)             \
    X(HostCr4,                   "HOST_CR4",                    0x6C04, None)             \
    X(HostFsBase,                "HOST_FS_BASE",                0x6C06, None)             \
    X(HostGsBase,                "HOST_GS_BASE",                0x6C08, None)             \
    X(HostTrBase,                "HOST_TR_BASE",                0x6C0A, None)             \
    X(HostGdtrBase,              "HOST_GDTR_BASE",              0x6C0C, None)             \
    X(HostIdtrBase,              "HOST_IDTR_BASE",              0x6C0E, None)             \
    X(HostIa32SysenterEsp,       "HOST_IA32_SYSENTER_ESP",      0x6C10, None)             \
    X(HostIa32SysenterEip,       "HOST_IA32_SYSENTER_EIP",      0x6C12, None)             \
    X(HostRsp,                   "HOST_RSP",                    0x6C14, None)             \
    X(HostRip,                   "HOST_RIP",                    0x6C16, None)
// clang-format on
