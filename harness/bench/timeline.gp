# Draws one timeline.py TSV as a PNG: a row per client, a thin line while it is connected but
# not yet served (t_connect -> t_first), a thick bar while it is served (t_first -> t_done).
#
#   gnuplot -e "infile='x.tsv'; outfile='x.png'; title='04-threadpool (-w 4)'" harness/bench/timeline.gp
#
# Optional variables (in the same -e string):
#   order='served'  rows in the order the clients were first served, the earliest on top (the
#                   default: the iterative server draws a staircase); the y labels are still
#                   the client numbers
#   order='client'  client 1 on top, client N at the bottom
#   width=800; height=400   the size of the PNG in pixels
#   xmax=13         a fixed end of the x axis, to compare several pictures (default: the data's)
# A client that failed (an error in the TSV) gets a red "failed" mark at the time it gave up (from
# its error, "at 3.141 s: ..."), and a red bar if it had been served until then.

if (!exists("infile")) { print "timeline.gp: set infile='x.tsv' (and outfile='x.png', title='...') with -e"; exit status 2 }
if (!exists("outfile")) { outfile = infile[1:strlen(infile) - (infile[strlen(infile)-3:] eq ".tsv" ? 4 : 0)] . ".png" }
if (!exists("title")) { title = infile }
if (!exists("order")) { order = "served" }
if (order ne "served" && order ne "client") { print "timeline.gp: order must be 'served' or 'client'"; exit status 2 }
if (!exists("width")) { width = 800 }
if (!exists("height")) { height = 400 }

set datafile separator "\t"

# ---- the data: how many clients, when they were served, when the last one finished ----
stats infile skip 1 using 1 nooutput
N = int(STATS_max)          # client numbers are 1..N
rows = STATS_records
# When a failed client gave up: its error reads "at 3.141 s: ...".
failed_at(s) = (s[1:3] eq "at " && strstrt(s, " s:") > 4) ? real(s[4:strstrt(s, " s:") - 1]) : NaN
last(c) = valid(4) ? $4 : (strcol(5) ne "-" && failed_at(strcol(5)) == failed_at(strcol(5))) ? failed_at(strcol(5)) \
          : valid(3) ? $3 : valid(2) ? $2 : 0
stats infile skip 1 using (last(0)) nooutput
tmax = STATS_max
stats infile skip 1 using (valid(4) ? $4 : 0) nooutput
tdone = STATS_max
stats infile skip 1 using (valid(4) ? 1 : 0) nooutput
completed = int(STATS_sum)

# Row of each client: its rank by first echo (ties and the never-served, by client number), or
# its number.  key = t_first, with the clients never served after everyone else.
array key[N]
array row[N]
do for [i=1:N] { key[i] = NaN; row[i] = i }
stats infile skip 1 using (key[int($1)] = valid(3) ? $3 : 1e9 + $1, 0) nooutput
if (order eq "served") {
    do for [i=1:N] {
        r = 1
        do for [j=1:N] {
            if (key[j] == key[j] && key[i] == key[i]) {
                if (key[j] < key[i] || (key[j] == key[i] && j < i)) { r = r + 1 }
            }
        }
        row[i] = r
    }
}
y(c) = row[int(c)]

# ---- the picture ----
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size width, height enhanced font "Sans,11" linewidth 1
} else {
    set terminal png size width, height enhanced font "DejaVuSans,10"
}
set output outfile

set title title font ",13" noenhanced
set xlabel "seconds since all clients connected"
set ylabel (order eq "served" ? "client (in the order served)" : "client")
xend = exists("xmax") ? xmax : tmax > 0 ? tmax * 1.06 : 1
set xrange [0:xend]
set yrange [N + 0.7:0.3]      # reversed: the first row on top
set ytics 1 scale 0 nomirror
if (order eq "served") {
    # label row r with the number of the client drawn there
    set ytics ()
    do for [i=1:N] { if (key[i] == key[i]) { set ytics add (sprintf("%d", i) row[i]) } }
}
set xtics nomirror out
set mxtics 2
set grid xtics mxtics back lt 1 lc rgb "#c8c8c8" lw 1, lt 1 lc rgb "#e4e4e4" lw 1
set border 3
set key outside bottom center horizontal noenhanced samplen 2.5 width 1 maxrows 1 font ",10"
set bmargin 5.5
set style fill solid 1.0 noborder
set bars 0

# The time the last client finished, as a dashed line and a label.
if (completed > 0) {
    set arrow 1 from tdone, graph 0 to tdone, graph 1 nohead dt 2 lc rgb "#555555" lw 1 front
    if (tdone > 0.4 * xend) {
        set label 1 sprintf("last echo %.2f s ", tdone) at tdone, graph 1 right offset 0, 0.6 font ",10" tc rgb "#333333"
    } else {
        set label 1 sprintf(" last echo %.2f s", tdone) at tdone, graph 1 left offset 0, 0.6 font ",10" tc rgb "#333333"
    }
}
if (completed < rows) {
    set label 2 sprintf("%d of %d clients failed", rows - completed, rows) at graph 0.01, graph 1 left offset 0, 0.6 font ",10" tc rgb "#cc0000"
}

plot infile skip 1 using 2:(y($1)):((valid(3) ? $3 : last(0)) - $2):(0) with vectors nohead \
         lw 1.5 lc rgb "#8a8a8a" title "connected, waiting", \
     '' skip 1 using 2:(y($1)) with points pt 7 ps 0.45 lc rgb "#8a8a8a" notitle, \
     '' skip 1 using (($3 + $4) / 2):(y($1)):3:4:(y($1) - 0.32):(y($1) + 0.32) with boxxyerror \
         lc rgb "#2f6fb0" title "being served", \
     '' skip 1 using ((valid(4) || !valid(3)) ? NaN : ($3 + last(0)) / 2):(y($1)):3:(last(0)):(y($1) - 0.32):(y($1) + 0.32) \
         with boxxyerror lc rgb "#e07070" title (completed < rows ? "served, then failed" : ""), \
     '' skip 1 using (last(0)):(y($1)):(strcol(5) eq "-" ? "" : " failed") \
         with labels left tc rgb "#cc0000" font ",10" notitle

set output
