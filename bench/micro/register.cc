// The only C++ in bench/: implements the mb_* shim of cases.h on top of
// Google Benchmark and registers every case of the table the binary links.
#include <benchmark/benchmark.h>

#include <string>

#include "cases.h"

struct mb_state {
    benchmark::State *s;
    int64_t ops;
};

extern "C" {
int mb_running(mb_state *st) { return st->s->KeepRunning(); }
void mb_pause(mb_state *st) { st->s->PauseTiming(); }
void mb_resume(mb_state *st) { st->s->ResumeTiming(); }
void mb_set_ops(mb_state *st, int64_t ops) { st->ops = ops; }
void mb_error(mb_state *st, const char *msg) { st->s->SkipWithError(msg); }
}

static void run_case(benchmark::State &state, const mb_case *c)
{
    mb_state st{&state, 1};
    int64_t args[2] = {0, 0};
    for (int i = 0; i < c->nargs; i++)
        args[i] = state.range(i);
    c->body(&st, args);
    state.SetItemsProcessed(state.iterations() * st.ops);
    state.counters["ops"] = benchmark::Counter(static_cast<double>(st.ops));
}

int main(int argc, char **argv)
{
    for (int i = 0; i < mb_ncases; i++) {
        const mb_case *c = &mb_cases[i];
        auto *b = benchmark::RegisterBenchmark(c->name, run_case, c);
        if (c->nargs > 0) {
            std::vector<std::string> names(c->argnames, c->argnames + c->nargs);
            b->ArgNames(names);
            for (int r = 0; r < c->nruns; r++)
                b->Args(std::vector<int64_t>(c->args[r], c->args[r] + c->nargs));
        }
        if (c->real_time)
            b->UseRealTime();
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
