/* libFuzzer target: the .kiln engine-file loader on arbitrary bytes (written to a temporary file,
 * since engines load from paths). A loaded module must also run a session create cleanly. */
#include "kiln.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/kiln-fuzz-engine-%d.kiln", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);
    kiln_module *m = NULL;
    if (kiln_module_load(path, &m) == KILN_OK) {
        kiln_session *s = NULL;
        if (kiln_session_create(m, &s) == KILN_OK) kiln_session_free(s);
        kiln_module_free(m);
    }
    return 0;
}
