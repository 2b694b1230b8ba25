// The user-interrupt structures' encodings (SDM vol. 2 SENDUIPI): the UITT entry a sender
// indexes and the UPID it posts into, as plain values.
#include <catch2/catch.hpp>

#include "pid/user_interrupts.hpp"

using namespace vtx::pid;

TEST_CASE("a UITT entry: V bit 0, UV bits 15:8, UPIDADDR bits 127:64, reserved bits and alignment checked",
          "[pid][uintr]") {
    const UittEntry e = UittEntry::make(5, 0x12340);
    CHECK(e.lo == 0x0501);
    CHECK(e.hi == 0x12340);
    CHECK(e.valid());
    CHECK(e.uv() == 5);
    CHECK(e.upid_address() == 0x12340);
    CHECK(e.reserved_bits_clear());
    CHECK_FALSE(UittEntry{0x0500, 0x12340}.valid());
    CHECK_FALSE(UittEntry::make(64, 0x12340).reserved_bits_clear());   // UV bits 15:14 must be 0
    CHECK(UittEntry::make(63, 0x12340).reserved_bits_clear());
    CHECK_FALSE((UittEntry{0x0503, 0x12340}).reserved_bits_clear());   // bit 1
    CHECK_FALSE((UittEntry{0x10501, 0x12340}).reserved_bits_clear());  // bit 16
    CHECK_FALSE(UittEntry::make(5, 0x12348).reserved_bits_clear());    // UPIDADDR bits 69:64
}

TEST_CASE("a UPID's first quadword: ON bit 0, SN bit 1, NV bits 23:16, NDST bits 63:32", "[pid][uintr]") {
    const UpidControl c = UpidControl::make(0xEC, 7);
    CHECK(c.raw == 0x0000000700EC0000ull);
    CHECK_FALSE(c.on());
    CHECK_FALSE(c.sn());
    CHECK(c.nv() == 0xEC);
    CHECK(c.ndst() == 7);
    CHECK(c.reserved_bits_clear());
    CHECK(UpidControl{c.raw | UpidControl::kOn}.on());
    CHECK(UpidControl{c.raw | UpidControl::kSn}.sn());
    CHECK_FALSE(UpidControl{c.raw | 0x4}.reserved_bits_clear());         // bits 15:2
    CHECK_FALSE(UpidControl{c.raw | (1ull << 24)}.reserved_bits_clear());  // bits 31:24
    // NDST names the APIC ID: all 32 bits in x2APIC mode, bits 15:8 in xAPIC mode.
    CHECK(UpidControl::make(0xEC, upid_ndst(3, false)).destination(false) == 3);
    CHECK(UpidControl::make(0xEC, upid_ndst(3, false)).ndst() == 0x300);
    CHECK(UpidControl::make(0xEC, upid_ndst(4000, true)).destination(true) == 4000);
}
