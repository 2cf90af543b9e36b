# Reference for the indicator table's percentage intervals by domain, computed with R's `survey`.
#
# R is the oracle, never the source: this script only *calls* R survey to produce numbers.
#
# Run from the repository root:   Rscript tests/reference/make_domain_ci.R
# Deterministic: no random numbers.
#
# Inputs : src/survey/data/api{strat,clus1}.csv (R's `api` data exported as CSV)
# Output : tests/reference/domain_ci.csv, one row per (case, domain value):
#   case      design and domain variable
#   design    the R call that built the design
#   by        domain variable;  by_value  its value
#   estimate  svyby(~y, ~by, design, svyciprop, method = "logit") estimate (a proportion)
#   ci_low, ci_high   its confidence interval (vartype = "ci", 95%): svyciprop's logit
#             interval, t on degf() of each domain's subset design (svyby subsets the design
#             per domain and svyciprop's default df is degf(design))
#   degf      degf(subset(design, by == by_value)), the df that interval used
#   n_rows    rows of the domain
#          tests/reference/domain_ci_jk1.csv, the JK1 replicate weights of the apiclus1 design
#   (cds, rep1..rep15: as.svrepdesign(svydesign(id=~dnum, weights=~pw), type="JK1")), so that
#   the test builds its replicate design on the same columns.
# The 0/1 variable is y = api00 > 650 (apistrat, apiclus1) or sw = sch.wide == "Yes".
# Designs with few PSUs per domain (districts within counties) give small domain df, some 0
# (one PSU: no interval, NaN).  Domains where y is all 0 or all 1 give R's glm estimate near
# the bound (1e-11) with a degenerate interval; the engine gives 0 or 1 and no interval.
# With degf = 1, confint.svyglm's conversion of t(1) to a normal level rounds to 1 and the
# interval is infinite (0 to NaN after expit); the test checks the t(1) interval by hand there.

suppressPackageStartupMessages(library(survey))

DATA <- file.path("src", "survey", "data")
read_api <- function(name) {
  x <- read.csv(file.path(DATA, paste0(name, ".csv")), colClasses = c(cds = "character"))
  x$y <- as.numeric(x$api00 > 650)
  x$sw <- as.numeric(x$sch.wide == "Yes")
  x
}
apistrat <- read_api("apistrat")
apiclus1 <- read_api("apiclus1")

# JK1 replicate weights of the one-stage cluster sample, written out so that both sides use
# the same columns (rep1..rep15)
dclus1_wr <- svydesign(id = ~dnum, weights = ~pw, data = apiclus1)
jk <- as.svrepdesign(dclus1_wr, type = "JK1")
rw <- weights(jk, "analysis")
colnames(rw) <- paste0("rep", seq_len(ncol(rw)))

DESIGNS <- list(
  strat = list(d = svydesign(id = ~1, strata = ~stype, weights = ~pw, fpc = ~fpc, data = apistrat),
               call = "svydesign(id=~1, strata=~stype, weights=~pw, fpc=~fpc, data=apistrat)"),
  clus1 = list(d = svydesign(id = ~dnum, weights = ~pw, fpc = ~fpc, data = apiclus1),
               call = "svydesign(id=~dnum, weights=~pw, fpc=~fpc, data=apiclus1)"),
  strat_psu = list(d = svydesign(id = ~dnum, strata = ~stype, weights = ~pw, nest = TRUE, data = apistrat),
                   call = "svydesign(id=~dnum, strata=~stype, weights=~pw, nest=TRUE, data=apistrat)"),
  clus1_jk1 = list(d = svrepdesign(data = cbind(apiclus1, rw), repweights = "rep[0-9]+", weights = ~pw,
                                   type = "JK1", scale = 14 / 15, combined.weights = TRUE),
                   call = "svrepdesign(repweights = JK1 of dclus1_wr (rep1..rep15), weights=~pw, type='JK1')")
)
CASES <- list(
  list(design = "strat", by = "awards", var = "y"),
  list(design = "strat", by = "both", var = "sw"),
  list(design = "clus1", by = "stype", var = "y"),
  list(design = "clus1", by = "cname", var = "y"),       # few PSUs (districts) per county
  list(design = "strat_psu", by = "cname", var = "y"),   # few PSUs per county, across strata
  list(design = "strat_psu", by = "awards", var = "sw"),
  list(design = "clus1_jk1", by = "stype", var = "y"),
  list(design = "clus1_jk1", by = "awards", var = "sw")
)

rows <- list()
for (cs in CASES) {
  d <- DESIGNS[[cs$design]]$d
  f <- as.formula(paste0("~", cs$var))
  b <- as.formula(paste0("~", cs$by))
  r <- suppressWarnings(svyby(f, b, d, svyciprop, method = "logit", vartype = "ci"))
  for (i in seq_len(nrow(r))) {
    v <- as.character(r[[cs$by]][i])
    sub <- d[as.character(d$variables[[cs$by]]) == v, ]
    rows[[length(rows) + 1]] <- data.frame(
      case = paste(cs$design, cs$by, cs$var, sep = "_"), design = DESIGNS[[cs$design]]$call,
      by = cs$by, by_value = v, variable = cs$var, estimate = unname(r[i, cs$var]),
      ci_low = unname(r[i, "ci_l"]), ci_high = unname(r[i, "ci_u"]), degf = degf(sub),
      n_rows = sum(as.character(d$variables[[cs$by]]) == v))
  }
}
out <- do.call(rbind, rows)
write.csv(out, file.path("tests", "reference", "domain_ci.csv"), row.names = FALSE)
write.csv(data.frame(cds = apiclus1$cds, rw), file.path("tests", "reference", "domain_ci_jk1.csv"),
          row.names = FALSE)
cat(sprintf("%d rows, survey %s\n", nrow(out), as.character(packageVersion("survey"))))
