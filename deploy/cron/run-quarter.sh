#!/bin/sh
# Cron example: run the survey notebooks for the quarter that has just ended.
#
# Writes a parameter set for the quarter (data in $SURVEY_DATA_ROOT/data/<YYYY-Qn>/, the spec's
# file names), compares with the quarter before when its data are there, and runs it; outputs
# in $SURVEY_DATA_ROOT/outputs/<YYYY-Qn>/, logs in $SURVEY_DATA_ROOT/outputs/_logs/.
# Exit code 0 only when the run succeeded (cron mails the output otherwise, with MAILTO set).
set -eu
PROJECT=${SURVEY_PROJECT_ROOT:-/opt/survey}
DATA_ROOT=${SURVEY_DATA_ROOT:-/srv/survey}
SPEC=${SURVEY_SPEC:-$PROJECT/specs/synthetic.yaml}

quarter() {  # quarter() YEAR MONTH -> YYYY-Qn of the quarter before that month
    y=$1; q=$(( ($2 - 1) / 3 ))
    if [ "$q" -eq 0 ]; then q=4; y=$((y - 1)); fi
    echo "$y-Q$q"
}
PERIOD=$(quarter "$(date +%Y)" "$(date +%-m)")
y=${PERIOD%-Q*}; q=${PERIOD#*-Q}
PREVIOUS=$(quarter "$y" $(( (q - 1) * 3 + 1 )))

PARAMS="$DATA_ROOT/parameters/$PERIOD.yaml"
mkdir -p "$DATA_ROOT/parameters"
{
    echo "name: \"$PERIOD\""
    echo "spec: $SPEC"
    echo "data_dir: $DATA_ROOT/data/$PERIOD"
    echo "period: \"$PERIOD\""
    echo "output_dir: $DATA_ROOT/outputs/$PERIOD"
    echo "publication: ons"
    echo "language: en"
    if [ -d "$DATA_ROOT/data/$PREVIOUS" ]; then
        echo "compare: {data_dir: $DATA_ROOT/data/$PREVIOUS, period: \"$PREVIOUS\"}"
    fi
} > "$PARAMS"

# `survey batch` (one parameter set); `survey run "$PARAMS"` is the same
exec "$PROJECT/.venv/bin/python" -m survey.batch "$PARAMS" --root "$PROJECT" --no-progress
