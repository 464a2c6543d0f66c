/* libFuzzer target: the fuzzer's input is a sequence of 8-byte operation
 * records (model.h), applied in one thread to the allocator and checked
 * against the model; every block and arena is released at the end of each
 * input. Built only with clang (tests/safety/meson.build), with a copy of
 * the allocator compiled for coverage so that the fuzzer sees its paths.
 *
 *   fuzz_ops -max_total_time=600 corpus/      # a long run
 *   MAPALLOC_OPTIONS=secure=1 fuzz_ops ...     # the secure profile */
#include <stdio.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct model m;
    static unsigned long inputs;
    if (inputs++ == 0) {
        model_init(&m, 0, true);
        m.max_large = (size_t)1 << 20; /* keep each input fast */
    }
    snprintf(model_context, sizeof model_context, "fuzz input %lu of %zu bytes", inputs, size);
    for (size_t i = 0; i + 8 <= size; i += 8)
        model_step(&m, data + i);
    model_finish(&m);
    model_drain_handoffs(&m);
    return 0;
}
