# bench/eval/report.awk - the tables of report.md from results.tsv lines
# "cpu system workload param metric value" (bench/eval/report.sh runs it
# with -v cpus="free pinned" -v linux=0|1, -v medf=FILE to write every
# median there as "cpu system workload param metric median", and
# -v checkf=FILE for one line per target: "met", "missed" or "not
# measured", then what).
{
	k = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4 SUBSEP $5
	cnt[k]++
	val[k, cnt[k]] = $6
	if (!(($3, $4) in seenp)) {
		seenp[$3, $4] = 1
		np[$3]++
		par[$3, np[$3]] = $4
	}
}

# The median of every value recorded for one figure ("" if none).
function med(c, s, w, p, m,    key, n, i, j, a, t) {
	key = c SUBSEP s SUBSEP w SUBSEP p SUBSEP m
	n = cnt[key]
	if (!n)
		return ""
	for (i = 1; i <= n; i++)
		a[i] = val[key, i] + 0
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
	return a[int((n + 1) / 2)]
}

# The median of n values a[1..n], with the smallest and largest left in
# rlo and rhi.
function medarr(a, n,    i, j, t) {
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--)
			a[j + 1] = a[j]
		a[j + 1] = t
	}
	rlo = a[1]
	rhi = a[n]
	return a[int((n + 1) / 2)]
}

# One system's figure over the rounds: the median, its range in rlo-rhi.
function frange(c, s, w, p, m,    key, n, i, a) {
	key = c SUBSEP s SUBSEP w SUBSEP p SUBSEP m
	n = cnt[key]
	rlo = rhi = ""
	if (!n)
		return ""
	for (i = 1; i <= n; i++)
		a[i] = val[key, i] + 0
	return medarr(a, n)
}

# System a against system b, round by round (round i of one against
# round i of the other: both ran in the same round): the median ratio,
# above 1 when a is better (dir hi: more is better; lo: less is), with
# its range in rlo-rhi; op "diff" gives a - b instead.
function rratio(c, a, b, w, p, m, dir, op,    ka, kb, n, i, x, y, r) {
	ka = c SUBSEP a SUBSEP w SUBSEP p SUBSEP m
	kb = c SUBSEP b SUBSEP w SUBSEP p SUBSEP m
	n = cnt[ka] < cnt[kb] ? cnt[ka] : cnt[kb]
	rlo = rhi = ""
	if (!n)
		return ""
	for (i = 1; i <= n; i++) {
		x = val[ka, i] + 0
		y = val[kb, i] + 0
		if (op == "diff")
			r[i] = x - y
		else if (x == 0 || y == 0)
			return ""
		else
			r[i] = dir == "lo" ? y / x : x / y
	}
	return medarr(r, n)
}

# A figure, or one derived from figures: cpu_gb (machine CPU seconds per
# gigabyte moved), cpu_us (machine CPU µs per exchange).
function fig(c, s, w, p, m,    x, y) {
	if (m == "cpu_gb") {
		x = med(c, s, w, p, "cpu_s")
		return x == "" ? "" : x * 1e9 / p
	}
	if (m == "cpu_us") {
		x = med(c, s, w, p, "cpu_s")
		y = med(c, s, w, p, "count")
		return x == "" || y == "" || y == 0 ? "" : x * 1e6 / y
	}
	return med(c, s, w, p, m)
}

function fmt(x) {
	if (x == "")
		return "-"
	x += 0
	if (x >= 1000 || x <= -1000)
		return sprintf("%.0f", x)
	if (x >= 100 || x <= -100)
		return sprintf("%.1f", x)
	if (x >= 1 || x <= -1)
		return sprintf("%.2f", x)
	return sprintf("%.3f", x)
}

# a relative to b, above 1 when a is better: hi (more is better) or lo.
function ratio(a, b, dir) {
	if (a == "" || b == "" || a + 0 == 0 || b + 0 == 0)
		return "-"
	return sprintf("%.2f", dir == "lo" ? b / a : a / b)
}

function sortparams(w,    i, j, t, n) {
	n = np[w]
	for (i = 2; i <= n; i++) {
		t = par[w, i]
		for (j = i - 1; j >= 1 && par[w, j] + 0 > t + 0; j--)
			par[w, j + 1] = par[w, j]
		par[w, j + 1] = t
	}
	return n
}

function row(label, c, w, p, m, dir,    f, mo, l, lo, t) {
	f = fig(c, "factored", w, p, m)
	mo = fig(c, "mono", w, p, m)
	l = fig(c, "linux", w, p, m)
	lo = fig(c, "linuxoff", w, p, m)
	t = fig(c, "tap", w, p, m)
	if (f == "" && mo == "" && l == "" && lo == "" && t == "")
		return
	printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, fmt(f), fmt(mo),
		fmt(l), fmt(lo), fmt(t), ratio(f, mo, dir), ratio(f, l, dir), ratio(mo, l, dir),
		ratio(mo, lo, dir)
	# Workloads where Bulkhead beats the kernel (for the targets).
	if (l != "" && (m == "mbps" || m == "per_s" || m ~ /^p/)) {
		if (f != "" && ratio(f, l, dir) + 0 > 1)
			wins = wins sprintf("- %s, %s: factored %s vs linux %s\n", label, c, fmt(f), fmt(l))
		if (mo != "" && ratio(mo, l, dir) + 0 > 1)
			wins = wins sprintf("- %s, %s: mono %s vs linux %s\n", label, c, fmt(mo), fmt(l))
	}
}

function header(first) {
	printf "| %s | factored | mono | linux | linux, no offloads | tap | factored/mono | factored/linux | mono/linux | mono/linux, no offloads |\n", first
	print "|---|---|---|---|---|---|---|---|---|---|"
}

# One target's line in the report and in checkf. x: the median (""
# when not measured), its range lo-hi over the rounds, goal, how: ge
# (x must be at least goal) or le (at most). Uncertain: the range spans
# the goal, or 1.0 for a ratio (ratio 1).
function verdict(label, c, x, lo, hi, goal, how, isratio, unit,    ok, v, span, r) {
	if (x == "") {
		v = "not measured"
		r = "-"
	} else {
		# As printed: a count of 3.0000014 copies (17 bytes of the
		# load generator's own in 32 MiB) is 3.00, and meets <= 3.
		ok = how == "ge" ? fmt(x) + 0 >= goal : fmt(x) + 0 <= goal
		v = ok ? "met" : "missed"
		span = lo != "" && ((lo + 0 < goal && hi + 0 > goal) || (isratio && lo + 0 < 1 && hi + 0 > 1))
		if (span)
			v = v ", uncertain"
		r = fmt(x) unit (lo != "" && hi != lo ? " (" fmt(lo) "-" fmt(hi) ")" : "")
	}
	printf "| %s | %s | %s | %s %s%s | %s |\n", label, c, r, how == "ge" ? "≥" : "≤", fmt(goal), unit,
		v ~ /^met/ ? v : "**" v "**"
	if (checkf != "")
		printf "%s\t%s, %s: %s (goal %s %s)\n", v, label, c, r, how == "ge" ? ">=" : "<=", fmt(goal) >checkf
}

# A target on the ratio of two systems, round by round.
function rtarget(label, c, a, b, w, p, m, dir, goal,    x) {
	x = rratio(c, a, b, w, p, m == "cpu_gb" ? "cpu_s" : m, dir)
	verdict(label, c, x, rlo, rhi, goal, "ge", 1, "")
}

# A target on one system's figure.
function atarget(label, c, s, w, p, m, goal, how, unit,    x) {
	x = frange(c, s, w, p, m)
	verdict(label, c, x, rlo, rhi, goal, how, 0, unit)
}

# The latency target: factored's p50 minus mono's (round by round), at
# most 1.5 x the extra domain crossings per exchange x one futex
# hand-off on one CPU (this run's IPC bench).
function latency_target(    c, d, dlo, dhi, h, x, n, k) {
	c = "pinned"
	d = rratio(c, "factored", "mono", "rr", 1, "p50_us", "", "diff")
	dlo = rlo
	dhi = rhi
	h = frange(c, "ipc", "handoff", 1, "ns")
	x = crossings(c, "factored")
	if (d == "" || h == "" || x == "") {
		verdict("rr 1 B p50: factored minus mono, µs, at most 1.5 x crossings x hand-off", c, "", "", "", 0, "le", 0, "")
		return
	}
	verdict(sprintf("rr 1 B p50: factored minus mono (bound: 1.5 x %.1f extra crossings x %.2f µs hand-off)", x, h / 1000),
		c, d, dlo, dhi, 1.5 * x * h / 1000, "le", 0, " µs")
}

# Crossings per 1-byte exchange between domain processes, from the
# cost run: batches taken from a neighbour's ring (chan.*.rx_batches,
# both instances) per exchange. Mono's links are calls: none.
function crossings(c, s,    b, n) {
	if (s == "mono")
		return 0
	b = fig(c, s, "cost_rr", 1, "chan_rx_batches")
	n = fig(c, s, "cost_rr", 1, "count")
	return b == "" || n == "" || n + 0 == 0 ? "" : b / n
}

function cost_table(c, w, p,    s, i, pk, line, x, m, n, lab) {
	ns = split("factored mono linux linuxoff tap", sy, " ")
	for (i = 1; i <= ns; i++) {
		s = sy[i]
		if (s == "linux" || s == "linuxoff")
			pk[s] = fig(c, s, "cost_" w, p, "frames")
		else if (s == "tap")
			pk[s] = fig(c, s, "cost_" w, p, "tx_frames") + fig(c, s, "cost_" w, p, "rx_frames")
		else
			pk[s] = fig(c, s, "cost_" w, p, "tx_frames")
	}
	printf "| %s, %s | factored | mono | linux | linux, no offloads | tap |\n", w == "bulk" ? "bulk " p / 1048576 " MiB" : "rr " p " B", c
	print "|---|---|---|---|---|---|"
	n = split("packets|system calls per packet|context switches per packet|CPU µs per packet (task-clock)|cycles per packet|instructions per packet|notifications owed per packet|signals sent per packet|signals suppressed, %|futex wake-ups per packet|descriptors per notification|ring occupancy found (mean)|loop sleeps per packet|copies per payload byte, per side (mean of the two)|checksum passes per payload byte, per side (mean)", lab, "|")
	for (m = 1; m <= n; m++) {
		line = "| " lab[m] " |"
		any = 0
		for (i = 1; i <= ns; i++) {
			s = sy[i]
			x = costfig(c, s, "cost_" w, p, m, pk[s])
			if (x != "")
				any = 1
			line = line " " fmt(x) " |"
		}
		if (any)
			print line
	}
	print ""
}

function per(a, b) {
	return a == "" || b == "" || b + 0 == 0 ? "" : a / b
}

function costfig(c, s, w, p, m, pk,    x, y) {
	if (m == 1)
		return pk == 0 ? "" : pk
	if (m == 2)
		return per(fig(c, s, w, p, "perf.raw_syscalls:sys_enter"), pk)
	if (m == 3)
		return per(fig(c, s, w, p, "perf.context-switches"), pk)
	if (m == 4)
		return per(fig(c, s, w, p, "perf.task-clock") * 1000, pk)
	if (m == 5)
		return per(fig(c, s, w, p, "perf.cycles"), pk)
	if (m == 6)
		return per(fig(c, s, w, p, "perf.instructions"), pk)
	if (m == 7)
		return per(fig(c, s, w, p, "chan_notifies"), pk)
	if (m == 8)
		return per(fig(c, s, w, p, "chan_signals"), pk)
	if (m == 9) {
		x = fig(c, s, w, p, "chan_notifies")
		y = fig(c, s, w, p, "chan_signals")
		return x == "" || x == 0 ? "" : 100 * (1 - y / x)
	}
	if (m == 10) {
		x = fig(c, s, w, p, "chan_wakes")
		if (x == "")
			return ""
		x += fig(c, s, w, p, "poller.wakes") + fig(c, s, w, p, "peer_wakes")
		return per(x + fig(c, s, w, p, "app_signals"), pk)
	}
	if (m == 11)
		return per(fig(c, s, w, p, "chan_sent"), fig(c, s, w, p, "chan_notifies"))
	if (m == 12)
		return per(fig(c, s, w, p, "chan_received"), fig(c, s, w, p, "chan_rx_batches"))
	if (m == 13)
		return per(fig(c, s, w, p, "loop.sleeps"), pk)
	if (m == 14)
		return copies(c, s, w, p)
	if (m == 15)
		return csums(c, s, w, p)
	return ""
}

# Copies of a payload byte per side in a cost run of w (p bytes moved
# one way), from the stack's counters of its instances (both sides, or
# the one against Linux): the socket
# server's copies into and out of applications' rings, TCP's into
# segments (none for a send chain), the driver's gathering of a chain
# into a buffer of its own where the device cannot gather it, the
# driver's at the device (frames less 66 bytes of headers each: Ethernet
# 14, IPv4 20, TCP 32 with the timestamps every end here sends), and
# the client library's, one per side by construction (into the sending
# application's region, out of the receiving one's). "" for Linux.
function copies(c, s, w, p,    x) {
	if (w == "cost_rr" || fig(c, s, w, p, "work.sock.rx_bytes") == "")
		return ""
	x = fig(c, s, w, p, "work.sock.rx_bytes") + fig(c, s, w, p, "work.sock.tx_bytes") + \
	    fig(c, s, w, p, "work.tcp.copy_bytes") + fig(c, s, w, p, "work.driver.tx_linear_bytes") + \
	    fig(c, s, w, p, "work.driver.dev.tx_bytes") + \
	    fig(c, s, w, p, "work.driver.dev.rx_bytes") - \
	    66 * (fig(c, s, w, p, "tx_frames") + fig(c, s, w, p, "rx_frames"))
	return x / p / sides(s) + 1
}

# Bulkhead's sides in a cost run: two instances, or one against Linux
# (tap).
function sides(s) {
	return s == "tap" ? 1 : 2
}

# Checksum passes over a payload byte per side: the payload bytes TCP
# summed, sent and received (tcp.csum_bytes: headers are not payload),
# and the wire's completions, over the payload the instances carried
# (what applications handed to them and took from them: a byte two
# instances carry counts once at each, as it is summed once at each).
function csums(c, s, w, p,    x, y) {
	if (w == "cost_rr" || fig(c, s, w, p, "work.sock.rx_bytes") == "")
		return ""
	x = fig(c, s, w, p, "work.tcp.csum_bytes") + fig(c, s, w, p, "work.driver.dev.tx_csum_bytes")
	y = fig(c, s, w, p, "work.sock.rx_bytes") + fig(c, s, w, p, "work.sock.tx_bytes")
	return y > 0 ? x / y : ""
}

END {
	# Every median, for the plots.
	if (medf != "") {
		for (key in cnt) {
			split(key, kk, SUBSEP)
			printf "%s\t%s\t%s\t%s\t%s\t%s\n", kk[1], kk[2], kk[3], kk[4], kk[5],
				med(kk[1], kk[2], kk[3], kk[4], kk[5]) >medf
		}
		close(medf)
	}
	nc = split(cpus, cpu, " ")
	for (ci = 1; ci <= nc; ci++) {
		c = cpu[ci]
		printf "## Every workload, CPUs %s\n\n", c == "free" ? "free" : \
			c == "pinned" ? "pinned to one core" : \
			"placed (each instance and its application on a CPU of its own)"
		header("workload")
		nb = sortparams("bulk_up")
		for (i = 1; i <= nb; i++) {
			p = par["bulk_up", i]
			row("bulk up " p / 1048576 " MiB, Mbit/s", c, "bulk_up", p, "mbps", "hi")
			row("bulk down " p / 1048576 " MiB, Mbit/s", c, "bulk_down", p, "mbps", "hi")
			row("bulk up, CPU s per GB (machine)", c, "bulk_up", p, "cpu_gb", "lo")
			row("bulk down, CPU s per GB (machine)", c, "bulk_down", p, "cpu_gb", "lo")
		}
		n = sortparams("rr")
		for (i = 1; i <= n; i++) {
			p = par["rr", i]
			row("rr " p " B, exchanges/s", c, "rr", p, "per_s", "hi")
			row("rr " p " B, p50 µs", c, "rr", p, "p50_us", "lo")
			row("rr " p " B, p99 µs", c, "rr", p, "p99_us", "lo")
			row("rr " p " B, p99.9 µs", c, "rr", p, "p999_us", "lo")
			row("rr " p " B, CPU µs per exchange", c, "rr", p, "cpu_us", "lo")
		}
		n = sortparams("crr")
		for (i = 1; i <= n; i++) {
			p = par["crr", i]
			row("connect, " p " B each way, close: connections/s", c, "crr", p, "per_s", "hi")
			row("connect-exchange-close p50 µs", c, "crr", p, "p50_us", "lo")
			row("connect-exchange-close p99 µs", c, "crr", p, "p99_us", "lo")
		}
		n = sortparams("conc")
		for (i = 1; i <= n; i++) {
			p = par["conc", i]
			row(p " connections at once, 64 B exchanges/s", c, "conc", p, "per_s", "hi")
			row(p " connections at once, p99 µs", c, "conc", p, "p99_us", "lo")
		}
		n = sortparams("udp")
		for (i = 1; i <= n; i++) {
			p = par["udp", i]
			row("UDP " p " B, exchanges/s", c, "udp", p, "per_s", "hi")
			row("UDP " p " B, p50 µs", c, "udp", p, "p50_us", "lo")
			row("UDP " p " B, p99 µs", c, "udp", p, "p99_us", "lo")
		}
		print ""
	}

	print "## Against the targets\n"
	print "Medians over the rounds with their range (min-max); a ratio is taken"
	print "round by round between systems that ran in the same round. Uncertain:"
	print "the range spans the goal (or 1.0). `./bulkhead bench --check` exits 3"
	print "when a target is missed or not measured.\n"
	print "| target | CPUs | measured | goal | |"
	print "|---|---|---|---|---|"
	pb = par["bulk_up", 1]
	for (ci = 1; ci <= nc; ci++) {
		c = cpu[ci]
		if (c == "placed")
			continue # the ratio targets are for free and pinned CPUs
		rtarget("bulk up, factored/mono", c, "factored", "mono", "bulk_up", pb, "mbps", "hi", 0.9)
		rtarget("bulk down, factored/mono", c, "factored", "mono", "bulk_down", pb, "mbps", "hi", 0.9)
		rtarget("bulk up, CPU per GB, mono's over factored's", c, "factored", "mono", "bulk_up", pb, "cpu_gb", "lo", 0.9)
	}
	latency_target()
	if (linux) {
		for (ci = 1; ci <= nc; ci++) {
			c = cpu[ci]
			rtarget("bulk up, mono/linux with GSO, TSO and GRO off", c, "mono", "linuxoff", "bulk_up", pb, "mbps", "hi", 1.0)
			rtarget("bulk up, mono/linux with its offloads", c, "mono", "linux", "bulk_up", pb, "mbps", "hi", 0.5)
		}
		x = rratio("pinned", "mono", "linux", "rr", 1, "p50_us", "hi")
		verdict("rr 1 B p50, mono over linux", "pinned", x, rlo, rhi, 2.0, "le", 0, "")
	}
	atarget("bulk up, mono, Mbit/s", "free", "mono", "bulk_up", pb, "mbps", 10000, "ge", "")
	atarget("bulk up, factored, Mbit/s", "free", "factored", "bulk_up", pb, "mbps", 9000, "ge", "")
	if (cpus ~ /placed/) {
		atarget("bulk up, mono, Mbit/s", "placed", "mono", "bulk_up", pb, "mbps", 10000, "ge", "")
		atarget("bulk up, factored, Mbit/s", "placed", "factored", "bulk_up", pb, "mbps", 9000, "ge", "")
	}
	pc = par["cost_bulk", 1]
	for (si = 1; si <= 2; si++) {
		s = si == 1 ? "factored" : "mono"
		x = pc == "" ? "" : copies("pinned", s, "cost_bulk", pc)
		verdict("copies of a payload byte per side, " s " (bulk cost run; mean of the two sides)", "pinned", x, "", "", 3, "le", 0, "")
		x = pc == "" ? "" : csums("pinned", s, "cost_bulk", pc)
		verdict("checksum passes over a payload byte per side, " s, "pinned", x, "", "", 1, "le", 0, "")
	}
	print ""
	print "Domain crossings per 1-byte exchange (batches a domain process took"
	print "from a neighbour's ring, both instances; the cost run): factored " fmt(crossings("pinned", "factored")) " pinned, " fmt(crossings("free", "factored")) " free; mono 0 (its links are calls)."
	h = frange("pinned", "ipc", "handoff", 1, "ns")
	if (h != "")
		print "One futex hand-off on one CPU (half of `bulkhead bench ipc`'s raw futex round trip, pinned, each round): " fmt(h / 1000) " µs (" fmt(rlo / 1000) "-" fmt(rhi / 1000) ")."
	print ""
	if (linux) {
		print "Where Bulkhead beats the Linux kernel (veth between namespaces):\n"
		printf "%s", wins == "" ? "- nowhere in this run\n" : wins
		print ""
	}

	n = sortparams("conns")
	if (n) {
		print "## Connection count (CPUs free; 64-byte exchanges, every connection in turn)\n"
		print "| connections | factored exchanges/s | mono | linux | factored/mono | factored/linux | factored p99 µs | mono p99 µs | linux p99 µs |"
		print "|---|---|---|---|---|---|---|---|---|"
		for (i = 1; i <= n; i++) {
			p = par["conns", i]
			f = fig("free", "factored", "conns", p, "per_s")
			mo = fig("free", "mono", "conns", p, "per_s")
			l = fig("free", "linux", "conns", p, "per_s")
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p, fmt(f), fmt(mo), fmt(l),
				ratio(f, mo, "hi"), ratio(f, l, "hi"),
				fmt(fig("free", "factored", "conns", p, "p99_us")),
				fmt(fig("free", "mono", "conns", p, "p99_us")),
				fmt(fig("free", "linux", "conns", p, "p99_us"))
		}
		print ""
	}

	split("batch spin", knobs, " ")
	for (ki = 1; ki <= 2; ki++) {
		kn = knobs[ki]
		n = sortparams(kn "_bulk")
		if (!n)
			continue
		if (kn == "batch")
			print "## Batch size (descriptors taken from a queue per pass, `BULKHEAD_BATCH`; CPUs free)\n"
		else
			print "## Polling budget (polls of the notification word before sleeping, `BULKHEAD_SPIN`; CPUs free)\n"
		printf "| %s | factored bulk Mbit/s | mono bulk Mbit/s | factored/mono | factored rr 1 B /s | mono rr 1 B /s | factored/mono |\n", kn
		print "|---|---|---|---|---|---|---|"
		for (i = 1; i <= n; i++) {
			p = par[kn "_bulk", i]
			f = fig("free", "factored", kn "_bulk", p, "mbps")
			mo = fig("free", "mono", kn "_bulk", p, "mbps")
			fr = fig("free", "factored", kn "_rr", p, "per_s")
			mr = fig("free", "mono", kn "_rr", p, "per_s")
			printf "| %s | %s | %s | %s | %s | %s | %s |\n", p, fmt(f), fmt(mo), ratio(f, mo, "hi"),
				fmt(fr), fmt(mr), ratio(fr, mr, "hi")
		}
		print ""
	}

	print "## Where the cost goes\n"
	print "One bulk run and one run of 1-byte exchanges of each system under `perf stat -a`"
	print "(the whole machine: every process and the kernel), with Bulkhead's own"
	print "counters of both instances read before and after. Packets are frames on"
	print "the wire, each counted once.\n"
	for (ci = 1; ci <= nc; ci++) {
		c = cpu[ci]
		if (np["cost_bulk"])
			cost_table(c, "bulk", par["cost_bulk", 1])
		if (np["cost_rr"])
			cost_table(c, "rr", par["cost_rr", 1])
	}
	print "CPU seconds of each domain process during the bulk run:\n"
	print "| process | factored, free | mono, free | factored, pinned | mono, pinned |"
	print "|---|---|---|---|---|"
	nd = split("a.driver a.ip a.tcp a.sock a.all b.driver b.ip b.tcp b.sock b.all", dn, " ")
	pb = par["cost_bulk", 1]
	for (i = 1; i <= nd; i++) {
		line = "| " dn[i] " |"
		any = 0
		split("factored mono", ss, " ")
		for (ci = 1; ci <= 2; ci++)
			for (si = 1; si <= 2; si++) {
				x = fig(ci == 1 ? "free" : "pinned", ss[si], "cost_bulk", pb, "cpu_s." dn[i])
				any = any || x != ""
				line = line " " fmt(x) " |"
			}
		if (any)
			print line
	}
	print ""
	print "(a = the server side, which receives the bulk data; b = the client side;"
	print "a.all and b.all: the one process of a mono instance.)"
}
