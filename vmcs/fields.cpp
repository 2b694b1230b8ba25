#include "vmcs/fields.hpp"

#include <algorithm>
#include <array>

#include "vmcs/feature_support.hpp"
#include "vmcs/name_match.hpp"

namespace vtx::vmcs {
namespace {

using detail::iequals;

#define VTX_VMCS_FIELD_INFO(name, text, enc, req) \
    FieldInfo{Field::name, text, FieldRequirement::req},
constexpr std::array kFields{VTX_VMCS_FIELD_LIST(VTX_VMCS_FIELD_INFO)};
#undef VTX_VMCS_FIELD_INFO

constexpr bool fields_sorted_and_well_formed() {
    for (std::size_t i = 0; i < kFields.size(); ++i) {
        const std::uint32_t enc = encoding(kFields[i].field);
        // Full-access encodings only, no reserved bits.
        if (is_high_access(enc) || (enc & ~kEncodingDefinedBits) != 0 ||
            (enc & kEncodingReservedBit12) != 0)
            return false;
        if (i > 0 && encoding(kFields[i - 1].field) >= enc) return false;
    }
    return true;
}
static_assert(fields_sorted_and_well_formed(), "field list must be sorted, full-access encodings");
static_assert(kFields.size() == kKnownFieldCount);

}  // namespace

const FieldInfo& known_field(std::size_t position) { return kFields.at(position); }


std::string_view field_name(Field f) {
    const auto pos = field_position(encoding(f));
    return pos ? kFields[*pos].name : std::string_view{};
}

std::optional<Field> find_field_by_name(std::string_view name) {
    for (const FieldInfo& info : kFields) {
        if (iequals(info.name, name)) return info.field;
    }
    return std::nullopt;
}

bool requirement_met(FieldRequirement requirement, const model::CpuFeatures& f) {
    switch (requirement) {
        case FieldRequirement::None:
            return true;
        case FieldRequirement::Vpid:
            return supports_vpid(f);
        case FieldRequirement::PostedInterrupts:
            return supports_posted_interrupts(f);
        case FieldRequirement::IpiVirtualization:
            return supports_ipi_virtualization(f);
        case FieldRequirement::VirtualInterruptDelivery:
            return supports_virtual_interrupt_delivery(f);
        case FieldRequirement::SecondaryControls:
            return supports_secondary_controls(f);
        case FieldRequirement::TertiaryControls:
            return supports_tertiary_controls(f);
        case FieldRequirement::TprShadow:
            return supports_tpr_shadow(f);
        case FieldRequirement::VirtualizeApicAccesses:
            return supports_virtualize_apic_accesses(f);
        case FieldRequirement::MsrBitmaps:
            return supports_msr_bitmaps(f);
        case FieldRequirement::Ept:
            return supports_ept(f);
        case FieldRequirement::EptpSwitching:
            return supports_eptp_switching(f);
        case FieldRequirement::VmFunctions:
            return supports_vm_functions(f);
        case FieldRequirement::PreemptionTimer:
            return supports_preemption_timer(f);
        case FieldRequirement::SecondaryExitControls:
            return supports_secondary_exit_controls(f);
    }
    return false;
}

bool is_supported_field(std::uint32_t enc, const model::CpuFeatures& features) {
    if ((enc & ~kEncodingDefinedBits) != 0) return false;
    const auto pos = field_position(enc & ~kEncodingAccessHigh);
    if (!pos) return false;
    if (is_high_access(enc) && field_width(enc) != FieldWidth::Bits64) return false;
    return requirement_met(kFields[*pos].requirement, features);
}

bool is_supported_field(Field f, const model::CpuFeatures& features) {
    return is_supported_field(encoding(f), features);
}

}  // namespace vtx::vmcs
