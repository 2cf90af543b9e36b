# Reference fixture for a model whose outcome is not victimization, computed with R's `survey`.
#
# R is the oracle, never the source: this script only *calls* R (svydesign, svyglm, relevel,
# droplevels) to produce numbers; nothing here is ported to Python.
#
# Run from the repository root:   Rscript tests/reference/make_perception_model.R
# Deterministic: no random numbers are drawn.
#
# Inputs (tests/reference/data/, raw codes as in the survey files; a synthetic survey of 3,411
# adults in 250 PSUs and 16 strata, written by `survey synth --households 5000 --seed 1`):
#   perception_persons.csv    hhid, pid, stratum, psu, region (1-8), sex (1 male, 2 female), age,
#                             safedark (1 very safe, 2 fairly safe, 3 a bit unsafe, 4 very
#                             unsafe, 8 don't know, 9 refused), wt_person
#   perception_incidents.csv  incid, hhid, pid, crimecode, month (1-12 inside the reference
#                             period; 0 and 13 outside it)
# Output (tests/reference/fixtures/models/):
#   r_perception_model.csv    case, term (R's name), estimate, se, t, df, p_value; plus per case
#                             the rows term = "(n)" (rows used, in `estimate`) and "(df)" (the
#                             residual df).  Reference levels appear as the levels with no term.
#
# The model: feeling unsafe walking alone after dark (safedark 3 or 4 = 1, 1 or 2 = 0, 8/9
# missing and left out) ~ victim of a personal crime in the period + sex + age band + region;
# quasibinomial svyglm on the stratified cluster design (PSUs with replacement).
#   victim_personal: any incident of the person with crimecode in 51, 52, 53, 61, 62, 71, 72, 81
#                    and month in 1..12 (code 99 is never a crime).
#   age_band:        [16,25) [25,35) ... [75,Inf), labels "16-24" ... "75+".
#   region:          a factor whose levels are WIDER than the file: "Offshore islands" (code 0,
#                    held by nobody) first, then the 8 regions.  Cases:
#   first     droplevels() drops the empty level, so each factor's reference is its first
#             category holding a case (region: North; age: 16-24; sex: Male).  Without
#             droplevels R's treatment contrasts would take the empty level as the reference and
#             alias one region coefficient (NA): the fixture documents the choice made instead.
#   declared  region reference Capital, age_band reference 45-54 (relevel), sex reference the
#             category with the largest sum of weights among the rows used.

suppressPackageStartupMessages(library(survey))
options(survey.lonely.psu = "fail")

DATA <- file.path("tests", "reference", "data")
OUT <- file.path("tests", "reference", "fixtures", "models")
dir.create(OUT, recursive = TRUE, showWarnings = FALSE)

p <- read.csv(file.path(DATA, "perception_persons.csv"))
inc <- read.csv(file.path(DATA, "perception_incidents.csv"))

personal <- c(51, 52, 53, 61, 62, 71, 72, 81)
hit <- inc[inc$crimecode %in% personal & inc$month >= 1 & inc$month <= 12, ]
key <- function(h, i) paste(h, i)
p$victim__personal <- as.numeric(key(p$hhid, p$pid) %in% key(hit$hhid, hit$pid))
p$unsafe <- ifelse(p$safedark %in% c(8, 9) | is.na(p$safedark), NA, as.numeric(p$safedark %in% c(3, 4)))
p$sex <- factor(p$sex, levels = c(1, 2), labels = c("Male", "Female"))
p$age_band <- cut(p$age, c(16, 25, 35, 45, 55, 65, 75, Inf), right = FALSE,
                  labels = c("16-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"))
p$region <- factor(p$region, levels = 0:8, labels = c("Offshore islands", "North", "North West", "North East",
                                                     "Central", "East", "Capital", "South East", "South West"))
stopifnot(sum(p$region == "Offshore islands") == 0)

num <- function(x) ifelse(is.na(x), "NA", sprintf("%.15g", as.numeric(x)))
rows <- list()
fit_case <- function(case, data) {
  des <- svydesign(ids = ~psu, strata = ~stratum, weights = ~wt_person, data = data, nest = FALSE)
  m <- svyglm(unsafe ~ victim__personal + sex + age_band + region, design = des, family = quasibinomial())
  s <- coef(summary(m))
  out <- data.frame(case = case, term = rownames(s), estimate = s[, 1], se = s[, 2], t = s[, 3],
                    df = m$df.residual, p_value = s[, 4])
  extra <- data.frame(case = case, term = c("(n)", "(df)"), estimate = c(nrow(m$model), m$df.residual),
                      se = NA, t = NA, df = NA, p_value = NA)
  rows[[case]] <<- rbind(out, extra)
}

first <- p
first$region <- droplevels(first$region)
fit_case("first", first)

declared <- p
declared$region <- relevel(droplevels(declared$region), ref = "Capital")
declared$age_band <- relevel(declared$age_band, ref = "45-54")
used <- !is.na(declared$unsafe)
wsex <- tapply(declared$wt_person[used], declared$sex[used], sum)
declared$sex <- relevel(declared$sex, ref = names(which.max(wsex)))
fit_case("declared", declared)

res <- do.call(rbind, rows)
for (v in c("estimate", "se", "t", "df", "p_value")) res[[v]] <- num(res[[v]])
write.csv(res, file.path(OUT, "r_perception_model.csv"), row.names = FALSE, quote = c(1, 2))
cat("largest sex category:", names(which.max(wsex)), "\n")
