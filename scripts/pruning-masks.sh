#!/bin/bash
# --save-mask figures for docs/pruning.md on testbed frames (random-weight tiny-224 checkpoint)
cd "$(dirname "$0")/.."
M=${MODEL:-/work/scratch/prune/tiny-224}   # sqap-vla synth --preset tiny-224 --out DIR
F=${FRAMES:-/work/scratch/prune/frames}   # npx tsx scripts/testbed-frame.ts --task T --seed S --steps N --out $F/T
for t in goal-red-cube-on-plate long-both-cubes-to-basket; do
  EEF=$(node -e "console.log(require('$F/$t/eef.json').eef.join(','))")
  INS=$(node -e "console.log(require('$F/$t/eef.json').instruction)")
  echo "== $t eef $EEF"
  ./bin/sqap-vla.js act --model $M --image $F/$t/frame.png --instruction "$INS" --variant sqap@0.5 \
    --eef="$EEF" --camera $F/$t/camera.json --save-mask docs/images/pruning-mask-$t.png --json | tail -1
done
