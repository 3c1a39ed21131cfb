/* libFuzzer target: the .kiln engine-file parser on arbitrary bytes. The checksum check is
 * skipped (KN_PLAN_LOAD_SKIP_CRC) so that mutations reach the parser instead of stopping at the
 * CRC; the checksum itself is tested in tests/unit/test_plan.c. A module that loads must also
 * make and free a session cleanly. */
#include "plan/plan.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_module *m = NULL;
    if (kn_plan_load_memory(data, size, KN_PLAN_LOAD_SKIP_CRC, &m) == KILN_OK) {
        kiln_session *s = NULL;
        if (kiln_session_create(m, &s) == KILN_OK) kiln_session_free(s);
        kiln_module_free(m);
    }
    return 0;
}
