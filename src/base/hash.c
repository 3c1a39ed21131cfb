/* FNV-1a for cache keys and CRC-32 (IEEE) for file checksums. */
#include "base.h"

uint64_t kn_hash_bytes(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint32_t kn_crc_table[256];
static int kn_crc_ready;

static void kn_crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        kn_crc_table[i] = c;
    }
    kn_crc_ready = 1; /* idempotent: racing initialisers write the same values */
}

uint32_t kn_crc32(uint32_t crc, const void *data, size_t n) {
    if (!kn_crc_ready) kn_crc_init();
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = kn_crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}
