# NCVS 2021 household property victimization over the collection year, computed independently
# in R from the raw extracts (the columns exported by export_ncvs_csv.py), with R survey's SEs.
#
# R is the oracle, never the source.  Run from the repository root:
#   python tests/reference/export_ncvs_csv.py /tmp/ncvs
#   Rscript tests/reference/make_ncvs_annual.R /tmp/ncvs tests/reference/fixtures/ncvs_annual_r.csv
#
# The unit is the household (IDHH) over the 2021 collection year: its interviews (one row per
# household-quarter, weight WGTHHCY > 0) are combined; it is a victim if any interview reports a
# property victimization; its weight is the sum of its interviews' collection-year weights.
# Victimizations are weighted as incidence (WGTVICCY x series count; series as BJS: V4017 == 2,
# V4018 not 2/8, V4019 not 1/8, count V4016 capped at 10, 997/998 = 6); incidents outside the
# US (V4022 == 1) are excluded.  Design: strata V2117, PSU V2118, nested, Taylor.

suppressPackageStartupMessages(library(survey))
args <- commandArgs(trailingOnly = TRUE)
src <- args[1]
out <- args[2]
options(survey.lonely.psu = "fail")

hh <- read.csv(file.path(src, "household.csv"), colClasses = c(YEARQ = "character", IDHH = "character"))
inc <- read.csv(file.path(src, "incident.csv"), colClasses = c(YEARQ = "character", IDHH = "character"))

prop_codes <- c(31, 32, 33, 40, 41, 54:59)
inc <- inc[!(inc$V4022 %in% 1) & inc$V4529 %in% prop_codes, ]
series <- (inc$V4017 %in% 2) & !(inc$V4018 %in% c(2, 8)) & !(inc$V4019 %in% c(1, 8))
cnt <- ifelse(inc$V4016 %in% c(997, 998), 6, pmin(inc$V4016, 10))
inc$count <- ifelse(series, cnt, 1)
inc$wcount <- inc$WGTVICCY * inc$count
inc$wrep <- inc$wcount * (inc$V4399 %in% 1)
inc$rep1 <- as.numeric(inc$V4399 %in% 1)

resp <- hh[hh$WGTHHCY > 0, ]
key <- paste(inc$YEARQ, inc$IDHH)
stopifnot(all(key %in% paste(resp$YEARQ, resp$IDHH)))

# per household over the year
agg <- function(x, by) tapply(x, by, sum)
W <- agg(resp$WGTHHCY, resp$IDHH)
k <- agg(inc$count, inc$IDHH)
nw <- agg(inc$wcount, inc$IDHH)
rw <- agg(inc$wrep, inc$IDHH)
anyrep <- agg(inc$rep1, inc$IDHH)
resp <- resp[order(resp$IDHH, resp$YEARQ), ]
last <- resp[!duplicated(resp$IDHH, fromLast = TRUE), ]   # the latest interview of the year
units <- unique(hh[, c("IDHH", "V2117", "V2118")])
stopifnot(!any(duplicated(units$IDHH)))
units$W <- 0
units$W[match(names(W), units$IDHH)] <- W
units$k <- 0
units$k[match(names(k), units$IDHH)] <- k
units$nw <- 0
units$nw[match(names(nw), units$IDHH)] <- nw
units$rw <- 0
units$rw[match(names(rw), units$IDHH)] <- rw
units$anyrep <- 0
units$anyrep[match(names(anyrep), units$IDHH)] <- anyrep
units$V2015 <- NA
units$V2015[match(last$IDHH, units$IDHH)] <- last$V2015
units$tenure <- factor(ifelse(units$V2015 == 1, "Owned", "Rented"), levels = c("Owned", "Rented"))

units$victim <- as.numeric(units$k > 0)
units$n <- ifelse(units$W > 0, units$nw / units$W, 0)       # victimizations, incidence weighting
units$rep <- ifelse(units$W > 0, units$rw / units$W, 0)
units$rv <- as.numeric(units$k >= 2)
units$ri <- units$n * units$rv
units$vrep <- as.numeric(units$anyrep > 0)
units$nrep <- units$n - units$rep                           # victimizations not reported (incl. unknown)
units$wt <- units$W

des <- svydesign(ids = ~V2118, strata = ~V2117, nest = TRUE, weights = ~wt,
                 data = transform(units, wt = ifelse(W > 0, W, 1)))
des <- subset(des, W > 0)

rows <- list()
add <- function(indicator, domain, value, est, se, df) {
  rows[[length(rows) + 1]] <<- data.frame(indicator = indicator, domain = domain, domain_value = value,
                                          estimate = est, se = se, df = df)
}
one <- function(d, domain, value) {
  df <- degf(d)
  m <- svymean(~victim + n, d)
  add("prevalence", domain, value, coef(m)[["victim"]], SE(m)[["victim"]], df)
  add("incidence", domain, value, coef(m)[["n"]], SE(m)[["n"]], df)
  tt <- svytotal(~victim + n, d)
  add("victims", domain, value, coef(tt)[["victim"]], SE(tt)[["victim"]], df)
  add("victimizations", domain, value, coef(tt)[["n"]], SE(tt)[["n"]], df)
  for (r in list(c("concentration", "n", "victim"), c("repeat_victims", "rv", "victim"),
                 c("repeat_incidents", "ri", "n"), c("reporting_rate", "rep", "n"),
                 c("reporting_rate_victims", "vrep", "victim"))) {
    x <- svyratio(as.formula(paste0("~", r[2])), as.formula(paste0("~", r[3])), d)
    add(r[1], domain, value, coef(x)[[1]], SE(x)[[1]], df)
  }
}
one(des, "overall", "all")
# domains estimated on the full design (svyby), as the engine does
m <- svyby(~victim + n, ~tenure, des, svymean)
cr <- svyby(~n, ~tenure, des, svyratio, denominator = ~victim)
rr <- svyby(~rv, ~tenure, des, svyratio, denominator = ~victim)
for (i in seq_along(levels(units$tenure))) {
  v <- levels(units$tenure)[i]
  df <- degf(subset(des, tenure == v))
  add("prevalence", "tenure", v, m$victim[i], m[["se.victim"]][i], df)
  add("incidence", "tenure", v, m$n[i], m[["se.n"]][i], df)
  add("concentration", "tenure", v, cr[["n/victim"]][i], cr[["se.n/victim"]][i], df)
  add("repeat_victims", "tenure", v, rr[["rv/victim"]][i], rr[["se.rv/victim"]][i], df)
}
res <- do.call(rbind, rows)
res$households <- sum(weights(des))
write.csv(res, out, row.names = FALSE)
cat(sprintf("R survey %s: %d rows -> %s\n", as.character(packageVersion("survey")), nrow(res), out))
