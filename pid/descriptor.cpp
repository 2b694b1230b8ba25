#include "pid/descriptor.hpp"

#include <cstring>

namespace vtx::pid {

// ---- PostedInterruptDescriptor ----

namespace {
Pir pir_from_bytes(const std::uint8_t* bytes) {
    Pir p;
    std::memcpy(p.words.data(), bytes, kPirBytes);  // little-endian, as the PIR in memory
    return p;
}
}  // namespace

PostedInterruptDescriptor::PostedInterruptDescriptor(model::MemoryPort& port, std::uint64_t address)
    : m_port(port), m_address(address) {
    if (address % kPidAlignment != 0)
        throw PidError("posted-interrupt descriptor address " + hex_address(address) +
                       " is not 64-byte aligned");
}

bool PostedInterruptDescriptor::pir_bit(std::uint8_t vector) const {
    std::uint8_t byte = 0;
    m_port.read(pir_address() + vector / 8, &byte, 1);
    return (byte >> (vector % 8)) & 1u;
}

Pir PostedInterruptDescriptor::pir() const {
    std::uint8_t bytes[kPirBytes];
    m_port.read(pir_address(), bytes, kPirBytes);
    return pir_from_bytes(bytes);
}

bool PostedInterruptDescriptor::pir_empty() const { return pir().empty(); }

NotificationInfo PostedInterruptDescriptor::notification_info() const {
    return NotificationInfo{m_port.read64(notification_info_address())};
}

void PostedInterruptDescriptor::initialize(std::uint8_t nv, std::uint32_t ndst) {
    std::uint8_t old[kPidBytes];
    m_port.locked_fetch_and_clear(m_address, old, kPidBytes);
    update_notification_info([&](NotificationInfo) {
        return NotificationInfo{}.with_nv(nv).with_ndst(ndst);
    });
}

void PostedInterruptDescriptor::set_nv(std::uint8_t nv) {
    update_notification_info([&](NotificationInfo i) { return i.with_nv(nv); });
}

void PostedInterruptDescriptor::set_ndst(std::uint32_t ndst) {
    update_notification_info([&](NotificationInfo i) { return i.with_ndst(ndst); });
}

void PostedInterruptDescriptor::set_sn() {
    update_notification_info([](NotificationInfo i) { return i.with_sn(true); });
}

void PostedInterruptDescriptor::clear_sn() {
    update_notification_info([](NotificationInfo i) { return i.with_sn(false); });
}

bool PostedInterruptDescriptor::ipiv_set_pir(std::uint8_t vector) {
    return m_port.locked_bts(pir_address(), vector);
}

IpivNotification PostedInterruptDescriptor::ipiv_update_notification() {
    bool send_notify = false;
    const NotificationInfo old = update_notification_info([&](NotificationInfo i) {
        send_notify = !i.on() && !i.sn();
        return send_notify ? i.with_on(true) : i;
    });
    return IpivNotification{send_notify, old.nv(), old.ndst()};
}

bool PostedInterruptDescriptor::kvm_test_and_set_pir(std::uint8_t vector) {
    return m_port.locked_bts(pir_address(), vector);
}

bool PostedInterruptDescriptor::kvm_test_and_set_on() {
    return m_port.locked_bts(m_address, kPidOnBit);
}

bool PostedInterruptDescriptor::clear_on() {
    const std::uint64_t old = m_port.locked_and(notification_info_address(), ~kNotifyOnMask);
    return NotificationInfo{old}.on();
}

Pir PostedInterruptDescriptor::fetch_and_clear_pir() {
    std::uint8_t bytes[kPirBytes];
    m_port.locked_fetch_and_clear(pir_address(), bytes, kPirBytes);
    return pir_from_bytes(bytes);
}

Pir PostedInterruptDescriptor::kvm_sync_pir_words() {
    Pir taken;
    for (unsigned i = 0; i < kPirWords32; ++i) {
        const std::uint64_t where = pir_address() + i * sizeof(std::uint32_t);
        if (m_port.read32(where) == 0) continue;
        const std::uint64_t word = m_port.locked_xchg(where, 0, sizeof(std::uint32_t));
        taken.words[i / 2] |= word << (32 * (i % 2));
    }
    return taken;
}

}  // namespace vtx::pid
