# Reference fixtures for cost of crime (survey.cost), computed with R's `survey` (svytotal,
# svyby(covmat = TRUE), svycontrast).  R is the oracle only; nothing here is ported.
#
# Run from the repository root:   Rscript tests/reference/make_cost.R
# Data (generated here, set.seed; written to tests/reference/data/cost_counts.csv): 6 strata x
# 8 PSUs x 25 households; counts of burglaries, thefts from vehicles and criminal damage per
# household in the reference year, correlated through a household frailty; region A/B.
# Design: svydesign(id = ~psu, strata = ~stratum, weights = ~w, data).
# Unit costs: the shipped table's burglary_dwelling, theft_from_vehicle, criminal_damage (GBP).
# Outputs (tests/reference/fixtures/cost/):
#   r_cost_totals.csv  case, variable, estimate, se      (svytotal / svyby totals)
#   r_cost_vcov.csv    case, row, col, value            (vcov of the totals)
#   r_cost.csv         case, estimate, se               (svycontrast: sum unit cost x total)

suppressPackageStartupMessages(library(survey))
OUT <- file.path("tests", "reference", "fixtures", "cost")
dir.create(OUT, recursive = TRUE, showWarnings = FALSE)
num <- function(x) ifelse(is.na(x), "NA", sprintf("%.15g", as.numeric(x)))
write_fixture <- function(df, path, text_cols) {
  for (v in names(df)) if (is.numeric(df[[v]])) df[[v]] <- num(df[[v]])
  write.csv(df, path, row.names = FALSE, na = "NA", quote = which(names(df) %in% text_cols))
}
set.seed(20261207)
x <- expand.grid(hh = 1:25, psu_in = 1:8, stratum = 1:6)
x$psu <- (x$stratum - 1) * 8 + x$psu_in
x$region <- ifelse(x$stratum <= 3, "A", "B")
x$w <- round(400 * exp(rnorm(nrow(x), 0, 0.35)), 3)
psu_eff <- rnorm(48, 0, 0.4)
frail <- rgamma(nrow(x), shape = 0.5, rate = 0.5) * exp(psu_eff[x$psu])
x$n_burglary <- rpois(nrow(x), 0.05 * frail)
x$n_theft_from_vehicle <- rpois(nrow(x), 0.09 * frail)
x$n_criminal_damage <- rpois(nrow(x), 0.12 * frail)
x <- x[, c("stratum", "psu", "region", "w", "n_burglary", "n_theft_from_vehicle", "n_criminal_damage")]
write.csv(x, file.path("tests", "reference", "data", "cost_counts.csv"), row.names = FALSE)
x <- read.csv(file.path("tests", "reference", "data", "cost_counts.csv"))
d <- svydesign(id = ~psu, strata = ~stratum, weights = ~w, data = x)
uc <- c(n_burglary = 5930, n_theft_from_vehicle = 870, n_criminal_damage = 1350)
f <- ~n_burglary + n_theft_from_vehicle + n_criminal_damage

tot <- svytotal(f, d)
by <- svyby(f, ~region, d, svytotal, covmat = TRUE)
vt <- vcov(tot); vb <- vcov(by)
totals <- rbind(
  data.frame(case = "all", variable = names(coef(tot)), estimate = coef(tot), se = SE(tot)),
  data.frame(case = "by_region", variable = names(coef(by)), estimate = coef(by), se = sqrt(diag(vb))))
vc <- rbind(
  data.frame(case = "all", row = rep(rownames(vt), ncol(vt)), col = rep(colnames(vt), each = nrow(vt)),
             value = as.vector(vt)),
  data.frame(case = "by_region", row = rep(rownames(vb), ncol(vb)), col = rep(colnames(vb), each = nrow(vb)),
             value = as.vector(vb)))
c_all <- svycontrast(tot, uc)
# region A and B: the cost in each, and B minus A (coefficients on svyby's A:var, B:var order)
nb <- names(coef(by))
cA <- setNames(ifelse(startsWith(nb, "A:"), uc[sub("^[AB]:", "", nb)], 0), nb)
cB <- setNames(ifelse(startsWith(nb, "B:"), uc[sub("^[AB]:", "", nb)], 0), nb)
ca <- svycontrast(by, cA); cb <- svycontrast(by, cB); cd <- svycontrast(by, cB - cA)
cost <- data.frame(case = c("all", "region_A", "region_B", "region_B_minus_A"),
                   estimate = c(coef(c_all), coef(ca), coef(cb), coef(cd)),
                   se = c(SE(c_all), SE(ca), SE(cb), SE(cd)))
write_fixture(totals, file.path(OUT, "r_cost_totals.csv"), c("case", "variable"))
write_fixture(vc, file.path(OUT, "r_cost_vcov.csv"), c("case", "row", "col"))
write_fixture(cost, file.path(OUT, "r_cost.csv"), "case")
cat("done\n")
