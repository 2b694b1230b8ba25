#pragma once
// The MSR bitmap (SDM 24.6.9): a 4-KiB page of four 1-KiB bitmaps - read-low, read-high,
// write-low, write-high - one bit per MSR of 00000000H-00001FFFH (low) and
// C0000000H-C0001FFFH (high). RDMSR/WRMSR of an MSR outside both ranges always exits
// (SDM 25.1.3). One home for the layout: the processor, KVM and nested KVM use it.
#include <cstdint>
#include <optional>

namespace vtx::vmcs {

inline constexpr std::uint32_t kMsrBitmapReadLow = 0, kMsrBitmapReadHigh = 1024, kMsrBitmapWriteLow = 2048,
                               kMsrBitmapWriteHigh = 3072;
inline constexpr std::uint32_t kMsrLowLast = 0x1FFF;
inline constexpr std::uint32_t kMsrHighFirst = 0xC0000000, kMsrHighLast = 0xC0001FFF;

// Where the bit for one MSR access lives: byte offset in the bitmap page, bit in that byte.
struct MsrBitmapBit {
    std::uint32_t byte;
    unsigned bit;
};

// The bit that controls RDMSR (write = false) or WRMSR of msr; nullopt for an MSR outside
// both ranges.
constexpr std::optional<MsrBitmapBit> msr_bitmap_bit(std::uint32_t msr, bool write) {
    std::uint32_t base = 0, index = 0;
    if (msr <= kMsrLowLast) {
        base = write ? kMsrBitmapWriteLow : kMsrBitmapReadLow;
        index = msr;
    } else if (msr >= kMsrHighFirst && msr <= kMsrHighLast) {
        base = write ? kMsrBitmapWriteHigh : kMsrBitmapReadHigh;
        index = msr - kMsrHighFirst;
    } else {
        return std::nullopt;
    }
    return MsrBitmapBit{base + index / 8, index % 8};
}

static_assert(msr_bitmap_bit(0x830, true)->byte == kMsrBitmapWriteLow + 0x830 / 8);
static_assert(msr_bitmap_bit(0xC0000081, false)->byte == kMsrBitmapReadHigh + 0x10);
static_assert(!msr_bitmap_bit(0x2000, false));

}  // namespace vtx::vmcs
