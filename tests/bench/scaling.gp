# Plots the engine scaling figures; run by tests/bench/scaling.sh:
#   gnuplot -e "datadir='build-bench/scaling'; out='docs/perf/scaling.png'" tests/bench/scaling.gp
# datadir holds host.dat, regex.dat and vars.gp from tests/bench/scaling_report.py.
if (!exists("datadir")) datadir = "build-bench/scaling"
if (!exists("out")) out = "docs/perf/scaling.png"
load datadir."/vars.gp"

set terminal pngcairo size 1400,560 font "DejaVu Sans,11" noenhanced
set output out
set multiplot layout 1,2 title "authbypass decide(): CPU time per decision (median; bars: min-max over repetitions)"
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set logscale x 10
set format x "%.0s%c"
set key top left box opaque

# ---- left: host rules
set title "Host rules (engine_bench's synthetic policy and half-hit mix)"
set xlabel "host rules (4 host entries each)"
set ylabel "ns per decision"
set xrange [5:200000]
set yrange [0:*]
plot datadir."/host.dat" using 1:2:3:4 with yerrorbars lc rgb "#1f77b4" pt 7 ps 1.2 notitle, \
     "" using 1:2 with lines lw 2 lc rgb "#1f77b4" title "decide(), N host rules"

# ---- right: regex rules
set title "Regex rules added to the shipped policy (realistic mix)"
set xlabel "regex rules (hostless, never matching)"
set ylabel "ns per decision (log)"
set logscale y 10
set xrange [0.7:1500]
set yrange [50:*]
set format y "%.0s%c"
set key top left
c1 = "#2ca02c"; c2 = "#d62728"; c3 = "#9467bd"; c4 = "#ff7f0e"
plot datadir."/regex.dat" using 1:2:3:4 with yerrorbars lc rgb c1 pt 7 notitle, \
     "" using 1:2 with lines lw 2 lc rgb c1 title title1, \
     "" using 1:5:6:7 with yerrorbars lc rgb c2 pt 5 notitle, \
     "" using 1:5 with lines lw 2 lc rgb c2 title title2, \
     "" using 1:8:9:10 with yerrorbars lc rgb c3 pt 9 notitle, \
     "" using 1:8 with lines lw 2 lc rgb c3 dt 2 title title3, \
     "" using 1:11:12:13 with yerrorbars lc rgb c4 pt 11 notitle, \
     "" using 1:11 with lines lw 2 lc rgb c4 dt 2 title title4, \
     base0 with lines lw 1 dt 3 lc rgb "black" title sprintf("shipped policy alone (%.0f ns)", base0)
unset multiplot
