"""Export the columns of the NCVS 2021 extracts (data/ncvs2021/*.zsav) that
make_ncvs_annual.R needs, as CSV (R reads them without haven):

    python tests/reference/export_ncvs_csv.py /tmp/ncvs
    Rscript tests/reference/make_ncvs_annual.R /tmp/ncvs tests/reference/ncvs_annual_r.csv
"""

import sys
from pathlib import Path

import pyreadstat

ROOT = Path(__file__).resolve().parents[2]
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
hh, _ = pyreadstat.read_sav(str(ROOT / "data/ncvs2021/ncvs_2021_household.zsav"),
                            usecols=["YEARQ", "IDHH", "WGTHHCY", "V2117", "V2118", "V2015"])
inc, _ = pyreadstat.read_sav(str(ROOT / "data/ncvs2021/ncvs_2021_incident.zsav"),
                             usecols=["YEARQ", "IDHH", "WGTVICCY", "V4016", "V4017", "V4018", "V4019", "V4022",
                                      "V4399", "V4529"])
hh.to_csv(out / "household.csv", index=False, float_format="%.10g")
inc.to_csv(out / "incident.csv", index=False, float_format="%.10g")
print(f"{len(hh)} household rows, {len(inc)} incidents -> {out}")
