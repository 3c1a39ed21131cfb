/* FNV-1a for cache keys and CRC-32 (IEEE) for file checksums. */
#include "base.h"

#include <pthread.h>

uint64_t kn_hash_bytes(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* CRC-32 by slicing-by-8: eight bytes per step through eight tables (about 3x the bytewise loop,
 * which matters for engine files of hundreds of MiB). Same values as the bytewise definition. */
static uint32_t kn_crc_table[8][256];
static pthread_once_t kn_crc_once = PTHREAD_ONCE_INIT;

static void kn_crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        kn_crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            kn_crc_table[t][i] = (kn_crc_table[t - 1][i] >> 8) ^ kn_crc_table[0][kn_crc_table[t - 1][i] & 0xff];
}

uint32_t kn_crc32(uint32_t crc, const void *data, size_t n) {
    pthread_once(&kn_crc_once, kn_crc_init);
    const uint32_t(*t)[256] = (const uint32_t(*)[256])kn_crc_table;
    const unsigned char *p = data;
    crc = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
              t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    }
    for (; n; p++, n--) crc = t[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
    return ~crc;
}
