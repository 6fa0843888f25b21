#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turn the raw outputs of bench/run-bench.sh into bench/out/results.json,
bench/out/results.md (a short Markdown table) and, with --gnuplot,
bench/out/attention.png (decode attention bandwidth ratio against context).

Every figure in results.json has the same form:
  {"figure": N, "name": ..., "params": {...},
   "value":    {"unit", "median", "min", "max", "n"},
   "baseline": {"unit", "median", "min", "max", "n", "what"},
   "ratio":    {"unit": "ratio", "median", "min", "max", "n"},
   "better": "higher" | "lower"}
where ratio = value / baseline, taken pair by pair (each value was measured
right next to its baseline) unless the entry says otherwise.
Standard library only.
"""
import argparse
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time


def stats(samples, unit):
    s = sorted(samples)
    return {"unit": unit, "median": statistics.median(s), "min": s[0], "max": s[-1], "n": len(s)}


def figure(fig, name, params, value, baseline, ratio, better="higher", **extra):
    d = {"figure": fig, "name": name, "params": params, "value": value, "baseline": baseline,
         "ratio": ratio, "better": better}
    d.update(extra)
    return d


def paired(fig, name, params, values, baselines, unit, base_unit, what, better="higher", **extra):
    """A figure from paired samples: ratio statistics over value[i] / baseline[i]."""
    if not values or len(values) != len(baselines):
        raise ValueError(f"{name}: {len(values)} values for {len(baselines)} baselines")
    b = stats(baselines, base_unit)
    b["what"] = what
    return figure(fig, name, params, stats(values, unit), b,
                  stats([v / w for v, w in zip(values, baselines)], "ratio"), better, **extra)


def load(path):
    with open(path) as f:
        return json.load(f)


# ---- machine and revision ----

def machine(llc_bytes):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    load1, load5, load15 = os.getloadavg()
    return {"cpu_model": cpu, "cpus_online": os.cpu_count(), "mem_total_bytes": mem,
            "kernel": platform.release(), "arch": platform.machine(), "llc_bytes": llc_bytes,
            "load_average_at_report": [load1, load5, load15]}


def git_revision(repo):
    def git(*args):
        try:
            return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    rev = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": rev, "describe": git("describe", "--always", "--dirty"),
            "uncommitted_changes": bool(dirty)}


def compiler(cc):
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else cc
    except OSError:
        return cc


def add_figure1_ratio(figs):
    """Figures 2, 3 (bytes) and 6 (decode) are paired with bandwidth measured next to each
    run; also give them against figure 1's own 2-thread median, as the plain definition."""
    bw = [f for f in figs if f["figure"] == 1 and f["params"].get("threads") == 2
          and "isa" not in f["params"]]
    if not bw:
        return
    ceiling = bw[0]["value"]["median"]
    for f in figs:
        if f["figure"] in (2, 3) and f["value"]["unit"] == "bytes/s":
            f["ratio_to_figure1"] = f["value"]["median"] / ceiling
        elif f["figure"] == 6 and f["name"].startswith(f["params"]["model"] + " decode"):
            floor = ceiling / f["params"]["weight_bytes_per_token"]
            f["ratio_to_figure1"] = f["value"]["median"] / floor


# ---- the figures ----

def fig_membw(m):
    out = []
    for e in m["read_bw"]:
        t = e["threads"]
        out.append(figure(1, f"host memory read bandwidth, {t} thread{'s' if t > 1 else ''}",
                          {"threads": e["threads"], "buffer_bytes": m["buffer_bytes"]},
                          e["value"], e["baseline"], e["ratio"]))
    p = m["peak_flops"]
    out.append(figure(1, "host peak FLOP/s (FMA), 2 threads",
                      {"threads": 2, "isa": p["isa"]}, p["value"], p["baseline"], p["ratio"]))
    return out


def fig_attention_bench(a):
    """attention_bench reports medians and bests only (no min): kept as it gives them."""
    out = []
    for c in a["cases"]:
        table = c.get("table", a.get("table", "shuffled"))
        out.append({
            "figure": 2, "name": f"attention_bench: decode {c['case']}, context {a['context']}, "
                                 f"table {table}",
            "params": {"head_dim": c["head_dim"], "n_q_heads": c["n_q_heads"],
                       "n_kv_heads": c["n_kv_heads"], "kv_dtype": c["kv_dtype"],
                       "context": a["context"], "batch": 1, "table": table,
                       "source": "bench/attention_bench"},
            "value": {"unit": "bytes/s", "median": c["kv_bytes_per_s_median"],
                      "best": c["kv_bytes_per_s_best"], "n": a["reps"]},
            "baseline": {"unit": "bytes/s", "median": c["host_bytes_per_s_median"],
                         "best": c["host_bytes_per_s_best"], "n": a["reps"],
                         "what": f"host read bandwidth, {a['bandwidth_threads']} threads, "
                                 "alternating with the kernel runs"},
            "ratio": {"unit": "ratio", "median": c["ratio_median"], "best": c["ratio_best"],
                      "note": "median value / median baseline (attention_bench's definition)"},
            "better": "higher", "max_rel_error": c["max_rel_error"]})
        if "pattern_bytes_per_s_best" in c:
            out[-1]["pattern"] = {
                "unit": "bytes/s", "median": c["pattern_bytes_per_s_median"],
                "best": c["pattern_bytes_per_s_best"],
                "ratio_best": c["ratio_to_pattern_best"],
                "what": "the same bytes read in the kernels' order by a plain loop, "
                        f"{a['bandwidth_threads']} threads"}
        if "ratio_fma_ceiling" in c:
            out[-1]["arithmetic"] = {
                "fma_per_kv_byte": c["fma_per_kv_byte"], "peak_fma_per_s": a["peak_fma_per_s"],
                "fraction_of_peak_best": c["fma_fraction_of_peak_best"],
                "ratio_ceiling": c["ratio_fma_ceiling"],
                "what": "multiply-adds (one per K or V element per query head sharing it) at "
                        f"the {a['bandwidth_threads']}-thread peak FMA rate: the ratio they "
                        "allow, and the share of that peak the best run used"}
    return out


def shape_params(c):
    return {"head_dim": c["head_dim"], "n_q_heads": c["n_q_heads"],
            "n_kv_heads": c["n_kv_heads"], "gqa": c["gqa"], "kv_dtype": c["kv_dtype"]}


def fig_sweep(s):
    out = []
    for c in s["decode"]:
        p = shape_params(c)
        p.update(context=c["context"], batch=c["batch"], kv_bytes=c["kv_bytes"])
        f = c["kv_read"]
        out.append(figure(2, f"decode attention, h{c['head_dim']} GQA {c['gqa']} "
                             f"{c['kv_dtype']}, context {c['context']}, batch {c['batch']}",
                          p, f["value"], f["baseline"], f["ratio"],
                          max_rel_error=c["max_rel_error"]))
    for c in s["prefill"]:
        p = shape_params(c)
        p.update(start_pos=c["start_pos"], chunk=c["chunk"], flop=c["flop"],
                 kv_bytes=c["kv_bytes"])
        extra = {"max_rel_error": c["max_rel_error"]} if "max_rel_error" in c else {}
        for key, what in (("flops", "FLOP/s"), ("kv_read", "KV bytes read")):
            f = c[key]
            out.append(figure(3, f"prefill attention {what}, h{c['head_dim']} GQA {c['gqa']} "
                                 f"{c['kv_dtype']}, chunk {c['chunk']} after {c['start_pos']}",
                              dict(p, measure=key), f["value"], f["baseline"], f["ratio"],
                              **extra))
    return out


def fig_kv_append(k, fig=4, label=""):
    out = []
    for c in k["cases"]:
        f = c["ns_per_token_layer"]
        sc = c["syscalls"]
        p = {"kv_dtype": c["kv_dtype"], "tokens": k["tokens"], "layers": k["layers"],
             "kv_heads": k["kv_heads"], "head_dim": k["head_dim"], "device": k["device"],
             "bytes_per_token_layer": c["bytes_per_token_layer"]}
        out.append(figure(fig, f"KV append + K/V write{label}, {c['kv_dtype']}", p,
                          f["value"], f["baseline"], f["ratio"], better="lower",
                          syscalls_per_token=sc["per_token"], syscalls=sc))
    return out


def fig_prefix(p):
    f = p["ttft"]
    params = {k: p[k] for k in ("prefix_tokens", "suffix_tokens", "cached_tokens_warm", "dim",
                                "n_layers", "kv_type", "threads", "device", "engine")}
    return [figure(5, f"time to first token, {p['prefix_tokens']}-token prefix cached",
                   params, f["value"], f["baseline"], f["ratio"], better="lower")]


RUN_ROW = re.compile(r"^(prompt \(prefill\)|generated \(decode\))\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s*$")
WEIGHTS = re.compile(r"([\d.]+) MB read per token")


def parse_run(path):
    """kvfpga-run's statistics table: {"prefill"|"decode": (tokens, seconds)}, weight bytes."""
    rows, wbytes = {}, None
    with open(path) as f:
        for line in f:
            m = RUN_ROW.match(line.strip())
            if m:
                key = "prefill" if m.group(1).startswith("prompt") else "decode"
                rows[key] = (int(m.group(2)), float(m.group(3)))
            m = WEIGHTS.search(line)
            if m:
                wbytes = float(m.group(1)) * 1e6
    if "decode" not in rows or "prefill" not in rows or wbytes is None:
        raise ValueError(f"{path}: no kvfpga-run statistics table (did it fail?)")
    return rows, wbytes


def model_shape(path):
    """dim, hidden, layers, heads, kv_heads, vocab, seq_len of a llama2.c checkpoint."""
    import struct
    with open(path, "rb") as f:
        return struct.unpack("<7i", f.read(28))


def prefill_flop_per_token(shape, prompt_tokens):
    """Matrix FLOPs of one prompt token (2 per weight of the layers) plus its attention."""
    dim, hidden, layers, heads, kv_heads, _vocab, _seq = shape
    kv_dim = dim * kv_heads // heads
    per_layer = 2 * (2 * dim * dim + 2 * dim * kv_dim + 3 * dim * hidden)
    attention = 4 * dim * (prompt_tokens + 1) / 2  # QK and PV over the average context
    return layers * (per_layer + attention)


def fig_e2e(raw, models_dir):
    out = []
    groups = {}
    for path in sorted(glob.glob(os.path.join(raw, "e2e-*-single.txt"))):
        m = re.match(r"e2e-(.+)-(card|host)-(\d+)-single\.txt$", os.path.basename(path))
        if m:
            groups.setdefault((m.group(1), m.group(2)), []).append(int(m.group(3)))
    for (model, backend), reps in sorted(groups.items()):
        dec, floor, pre, ceil, batch, single, n_dec, n_batch = [], [], [], [], [], [], [], []
        shape = model_shape(os.path.join(models_dir, model + ".bin"))
        wbytes = prompt = None
        for r in sorted(reps):
            base = os.path.join(raw, f"e2e-{model}-{backend}-{r}")
            try:  # a repetition cut short by a failure (run-bench.sh noted it) is left out
                rows, wbytes = parse_run(base + "-single.txt")
                brows, _ = parse_run(base + "-batch.txt")
                bw = load(base + "-single.membw.json")  # measured right before the run
            except (OSError, ValueError) as e:
                print(f"report: {model} {backend} repetition {r} left out: {e}",
                      file=sys.stderr)
                continue
            bw2 = [e for e in bw["read_bw"] if e["threads"] == 2][0]["value"]["median"]
            peak = bw["peak_flops"]["value"]["median"]
            prompt = rows["prefill"][0]
            dec_tps = rows["decode"][0] / rows["decode"][1]
            pre_tps = rows["prefill"][0] / rows["prefill"][1]
            dec.append(dec_tps)
            floor.append(bw2 / wbytes)
            pre.append(pre_tps)
            ceil.append(peak / prefill_flop_per_token(shape, prompt))
            batch.append(brows["decode"][0] / brows["decode"][1])
            single.append(dec_tps)
            n_dec.append(rows["decode"][0])
            n_batch.append(brows["decode"][0])
        if not dec:
            continue
        p = {"model": model, "attention": backend, "threads": 2, "weights": "f32",
             "dim": shape[0], "layers": shape[2], "weight_bytes_per_token": wbytes,
             "prompt_tokens": prompt, "decode_tokens": statistics.median(n_dec),
             "kv": "f16 in the emulated card (OpenCL engine)" if backend == "card"
             else "f32 in host memory (host attention)"}
        out.append(paired(6, f"{model} decode ({backend} attention)", p, dec, floor, "tokens/s",
                          "tokens/s", "memory floor: figure 1 (2 threads) / weight bytes per "
                          "token, measured right before the run"))
        out.append(paired(6, f"{model} prefill ({backend} attention)", p, pre, ceil, "tokens/s",
                          "tokens/s", "compute ceiling: peak FMA FLOP/s (2 threads) / FLOPs "
                          "per prompt token, measured right before the run"))
        out.append(paired(6, f"{model} batch of 8 ({backend} attention)",
                          dict(p, sequences=8, decode_tokens=statistics.median(n_batch)), batch,
                          single, "tokens/s",
                          "tokens/s", "one sequence's decode tokens/s (same model and "
                          "attention, same repetition)"))
    return out


def fig_vm(raw):
    path = os.path.join(raw, "vm", "kv_append-vm.json")
    if not os.path.exists(path):
        return []
    kernel = open(os.path.join(raw, "vm", "kernel")).read().strip()
    k = load(path)
    out = []
    for c in k["cases"]:
        f = c["ns_per_token_layer_vs_compare_device"]
        b = dict(f["baseline"], what="the library's host emulation of a card, same VM boot and "
                 "process, each repetition right after the card's")
        out.append(figure(7, f"VM: KV append on the real driver's mapping, {c['kv_dtype']}",
                          {"kv_dtype": c["kv_dtype"], "kernel": kernel, "tokens": k["tokens"],
                           "layers": k["layers"], "device": k["device"],
                           "compare_device": k["compare_device"]},
                          f["value"], b, f["ratio"], better="lower",
                          syscalls_per_token=c["syscalls"]["per_token"], syscalls=c["syscalls"]))
    return out


# ---- output ----

def si(v, unit):
    if unit == "bytes/s":
        return f"{v / 1e9:.2f} GB/s"
    if unit == "FLOP/s":
        return f"{v / 1e9:.1f} GFLOP/s"
    if unit == "ns":
        return f"{v:.0f} ns"
    if unit == "ms":
        return f"{v:.1f} ms"
    if unit == "tokens/s":
        return f"{v:.1f} tok/s"
    return f"{v:.3g} {unit}"


def row(f):
    v, b, r = f["value"], f["baseline"], f["ratio"]
    if "min" in v:
        val = f"{si(v['median'], v['unit'])} [{si(v['min'], v['unit'])} – {si(v['max'], v['unit'])}]"
    else:
        val = f"{si(v['median'], v['unit'])} (best {si(v['best'], v['unit'])})"
    rat = f"**{r['median']:.3f}**"
    if "min" in r:
        rat += f" [{r['min']:.3f} – {r['max']:.3f}]"
    if "pattern" in f:
        p = f["pattern"]
        rat += (f" (best {r['best']:.3f}; access-pattern read {si(p['best'], p['unit'])}, "
                f"kernel / pattern {p['ratio_best']:.3f}")
        if "arithmetic" in f:
            m = f["arithmetic"]
            rat += (f"; FMA ceiling {m['ratio_ceiling']:.2f}, "
                    f"{100 * m['fraction_of_peak_best']:.0f}% of peak FMA used")
        rat += ")"
    return f"| {f['figure']} | {f['name']} | {val} | {si(b['median'], b['unit'])} | {rat} |"


def summary_row(fig, name, cases):
    """One table row over many cases: medians of their medians, ratio range over cases."""
    v = statistics.median(f["value"]["median"] for f in cases)
    b = statistics.median(f["baseline"]["median"] for f in cases)
    r = [f["ratio"]["median"] for f in cases]
    unit = cases[0]["value"]["unit"]
    return (f"| {fig} | {name} ({len(cases)} cases) | {si(v, unit)} | "
            f"{si(b, cases[0]['baseline']['unit'])} | **{statistics.median(r):.3f}** "
            f"[{min(r):.3f} – {max(r):.3f}] |")


MODEL_ORDER = {"stories15M": 0, "stories110M": 1}


def markdown(res):
    figs = res["figures"]
    m = res["machine"]
    lines = [f"kvfpga `make bench` — {res['revision']['describe']}, {res['date']}, "
             f"{'quick' if res['quick'] else 'full'} run in {res['elapsed_s']} s",
             f"{m['cpu_model']}, {m['cpus_online']} CPUs, {m['mem_total_bytes'] / 2**30:.0f} GiB, "
             f"Linux {m['kernel']}. Value: median [min – max]; ratio = value / baseline "
             "(median [min – max] over pairs measured one right after the other).", "",
             "| # | figure | value | baseline (median) | ratio |", "|---|---|---|---|---|"]
    dec = [f for f in figs if f["figure"] == 2 and "source" not in f["params"]]
    pre = [f for f in figs if f["figure"] == 3]
    for f in figs:
        if f["figure"] == 1:
            lines.append(row(f))
    if dec:
        long_ctx = [f for f in dec if f["params"]["context"] >= 8192]
        for b in sorted({f["params"]["batch"] for f in long_ctx}):
            lines.append(summary_row(2, f"decode attention, contexts 8k-32k, batch {b}, "
                                        "medians over shapes",
                                     [f for f in long_ctx if f["params"]["batch"] == b]))
    if pre:
        lines.append(summary_row(3, "prefill attention FLOP/s vs peak, medians over chunks "
                                    "and shapes",
                                 [f for f in pre if f["params"]["measure"] == "flops"]))
        lines.append(summary_row(3, "prefill attention KV bytes/s vs read bandwidth",
                                 [f for f in pre if f["params"]["measure"] == "kv_read"]))
    e2e = sorted((f for f in figs if f["figure"] == 6),
                 key=lambda f: (MODEL_ORDER.get(f["params"]["model"], 9), f["params"]["attention"]))
    for f in [f for f in figs if f["figure"] in (4, 5)] + e2e + \
            [f for f in figs if f["figure"] == 7]:
        lines.append(row(f))
        if f["figure"] in (4, 7):
            lines[-1] = lines[-1][:-1] + f" system calls/token: {f['syscalls_per_token']:g} |"
    if dec:
        lines += ["", "Decode attention: KV bytes/s over host read bandwidth (figure 2, "
                  "median ratio), by context:", ""]
        ctxs = sorted({f["params"]["context"] for f in dec})
        lines.append("| shape | batch | " + " | ".join(f"{c // 1024}k" for c in ctxs) + " |")
        lines.append("|---|---|" + "---|" * len(ctxs))
        keyf = lambda f: (f["params"]["kv_dtype"], f["params"]["head_dim"], f["params"]["gqa"],
                          f["params"]["batch"])
        for key in sorted({keyf(f) for f in dec}):
            cells = []
            for c in ctxs:
                hit = [f for f in dec if keyf(f) == key and f["params"]["context"] == c]
                cells.append(f"{hit[0]['ratio']['median']:.2f}" if hit else "")
            lines.append(f"| {key[0]} h{key[1]} GQA {key[2]} | {key[3]} | " + " | ".join(cells)
                         + " |")
    xcheck = [f for f in figs if f["figure"] == 2 and "source" in f["params"]]
    if xcheck:
        lines += ["", "Cross-check, bench/attention_bench (32 query heads of 128, batch 1; "
                  "its own ratio definition: median / median):", ""]
        lines += ["| # | figure | value | baseline (median) | ratio |", "|---|---|---|---|---|"]
        lines += [row(f) for f in xcheck]
    if pre:
        lines += ["", "Prefill attention (figure 3), median ratios: FLOP/s over peak FMA "
                  "FLOP/s / KV bytes per second over read bandwidth, by chunk:", ""]
        chunks = sorted({f["params"]["chunk"] for f in pre})
        lines.append("| shape | " + " | ".join(str(c) for c in chunks) + " |")
        lines.append("|---|" + "---|" * len(chunks))
        keyf = lambda f: (f["params"]["kv_dtype"], f["params"]["head_dim"], f["params"]["gqa"])
        for key in sorted({keyf(f) for f in pre}):
            cells = []
            for c in chunks:
                got = {f["params"]["measure"]: f["ratio"]["median"] for f in pre
                       if keyf(f) == key and f["params"]["chunk"] == c}
                cells.append(f"{got.get('flops', 0):.2f} / {got.get('kv_read', 0):.3f}")
            lines.append(f"| {key[0]} h{key[1]} GQA {key[2]} | " + " | ".join(cells) + " |")
    for n in res["notes"]:
        lines.append(f"\nFigure {n['figure']} {n['note']}")
    if res["failed_checks"]:
        lines.append(f"\n**{res['failed_checks']} attention case(s) disagreed with the host "
                     "reference**")
    return "\n".join(lines) + "\n"


def plot(res, out_dir, gnuplot):
    dec = [f for f in res["figures"] if f["figure"] == 2 and "source" not in f["params"]]
    if not dec:
        return None
    keyf = lambda f: (f["params"]["kv_dtype"], f["params"]["head_dim"], f["params"]["gqa"])
    batches = sorted({f["params"]["batch"] for f in dec})
    dat = os.path.join(out_dir, "attention.dat")
    blocks = []
    with open(dat, "w") as d:
        for b in batches:
            for key in sorted({keyf(f) for f in dec}):
                pts = sorted((f["params"]["context"], f["ratio"]["median"], f["ratio"]["min"],
                              f["ratio"]["max"]) for f in dec
                             if keyf(f) == key and f["params"]["batch"] == b)
                d.write(f"# batch {b} {key[0]} h{key[1]} GQA {key[2]}\n")
                for p in pts:
                    d.write("%d %.5f %.5f %.5f\n" % p)
                d.write("\n\n")
                blocks.append((b, f"{key[0]} h{key[1]} GQA {key[2]}"))
    png = os.path.join(out_dir, "attention.png")
    m = res["machine"]
    script = [
        "set terminal pngcairo size 1400,560 font ',10'",
        f"set output '{png}'",
        f"set multiplot layout 1,{len(batches)} title 'Decode attention on the engine (PoCL): "
        f"KV bytes/s / host read bandwidth (2 threads), median with min-max; {m['cpu_model']}, "
        f"{res['revision']['describe']}'",
        "set logscale x 2", "set xlabel 'context (tokens)'",
        "set ylabel 'ratio to host read bandwidth'", "set grid", "set key top left",
        # Whiskers of runs disturbed by other load can be far off: clip them.
        "set yrange [0:*<1.5]", "set xrange [768:43000]",
        "set xtics ('1k' 1024, '2k' 2048, '4k' 4096, '8k' 8192, '16k' 16384, '32k' 32768)",
    ]
    # One colour per shape (head_dim, GQA); f32 solid, f16 dashed.
    shapes = sorted({t.split(" ", 1)[1] for _, t in blocks})
    for b in batches:
        parts = []
        for i, (bb, title) in enumerate(blocks):
            if bb != b:
                continue
            dtype, shape = title.split(" ", 1)
            parts.append(f"'{dat}' index {i} using 1:2:3:4 with yerrorlines "
                         f"lc {shapes.index(shape) + 1} dt {1 if dtype == 'f32' else 2} "
                         f"title '{title}'")
        script.append(f"set title 'batch {b}'")
        script.append("plot " + ", ".join(parts))
    script.append("unset multiplot")
    try:
        subprocess.run([gnuplot], input="\n".join(script) + "\n", text=True, check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"report: gnuplot failed: {getattr(e, 'stderr', e)}", file=sys.stderr)
        return None
    return png


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", type=int, default=0)
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--gnuplot")
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--cflags", default="", help="the flags the benchmarks were built with")
    a = ap.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    raw = a.raw

    def opt(name, parse):
        """A benchmark's figures, or none when it failed (run-bench.sh noted why)."""
        path = os.path.join(raw, name)
        try:
            return parse(load(path)) if os.path.exists(path) else []
        except (ValueError, KeyError) as e:
            print(f"report: {name} left out: {e!r}", file=sys.stderr)
            return []

    figs = opt("membw.json", fig_membw)
    figs += opt("attention_bench.json", fig_attention_bench)
    figs += opt("attention_sweep.json", fig_sweep)
    figs += opt("kv_append.json", fig_kv_append)
    figs += opt("prefix.json", fig_prefix)
    figs += fig_e2e(raw, os.path.join(repo, a.build, "bench", "models"))
    figs += fig_vm(raw)
    add_figure1_ratio(figs)
    notes = []
    path = os.path.join(raw, "notes.tsv")
    if os.path.exists(path):
        for line in open(path):
            n, text = line.rstrip("\n").split("\t", 1)
            notes.append({"figure": int(n), "note": text})
    sweep = opt("attention_sweep.json", lambda d: d) or {}
    membw = opt("membw.json", lambda d: d) or {}
    res = {
        "benchmark": "kvfpga make bench",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": bool(a.quick),
        "elapsed_s": a.elapsed,
        "machine": machine(membw.get("llc_bytes")),
        "revision": git_revision(repo),
        "build": {"cc": compiler(a.cc), "cflags": a.cflags, "dir": a.build},
        "opencl_device": sweep.get("device"),
        "failed_checks": sweep.get("failed_checks", 0),
        "notes": notes,
        "figures": figs,
    }
    md = markdown(res)
    png = plot(res, a.out, a.gnuplot) if a.gnuplot else None
    res["plot"] = os.path.relpath(png, repo) if png else None
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(md)
    missing = {1, 2, 3, 4, 5, 6, 7} - {f["figure"] for f in figs} - {n["figure"] for n in notes}
    if missing:
        print(f"report: no results for figure(s) {sorted(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
