# Reference fixtures for difference in differences with staggered starts
# (survey.evaluation.staggered_did), computed with R's `survey` (svyglm on the design and on
# subset() domains).  R is the oracle only; nothing here is ported.
#
# Run from the repository root:   Rscript tests/reference/make_did_staggered.R
# Input : tests/reference/data/did_staggered.csv, drawn once by
#         survey.evaluation.simulate_staggered_waves(n_strata=5, areas_per_stratum=8,
#         respondents=20, waves=(2018, ..., 2022), cohorts={2020: -0.05, 2021: -0.10}, seed=21):
#         `first` is the area's first treated wave (NA: never treated).
# Design: areas are the PSUs across waves, strata = stratum, weights = weight (Taylor), and its
#         JKn replicate version.
# Outputs (tests/reference/fixtures/did/r_did_staggered.csv): case, cohort, wave, term,
#         estimate, se, df (df.residual)
#   case twfe:  victim ~ factor(wave) + factor(cohort) + D, D = 1[wave >= first] (cohort "never" for NA)
#   case att:   for cohort g and wave t != g - 1 (t >= g: effects; t < g - 1: placebos), on
#               subset(design, (first == g | never) & wave in
#               {g - 1, t}): victim ~ post + G + Gpost (post = wave == t, G = first == g), term Gpost
suppressPackageStartupMessages(library(survey))
OUT <- file.path("tests", "reference", "fixtures", "did")
dir.create(OUT, recursive = TRUE, showWarnings = FALSE)
num <- function(x) ifelse(is.na(x), "NA", sprintf("%.15g", as.numeric(x)))
x <- read.csv(file.path("tests", "reference", "data", "did_staggered.csv"))
x$never <- is.na(x$first)
x$cohort <- factor(ifelse(x$never, "never", as.character(x$first)))
x$cohort <- relevel(x$cohort, ref = "never")
x$D <- as.numeric(!x$never & x$wave >= ifelse(x$never, Inf, x$first))
taylor <- svydesign(id = ~area, strata = ~stratum, weights = ~weight, data = x)
designs <- list(taylor = taylor, jkn = as.svrepdesign(taylor, type = "JKn"))
waves <- sort(unique(x$wave))
rows <- list()
for (dn in names(designs)) {
  des <- designs[[dn]]
  m <- svyglm(victim ~ factor(wave) + cohort + D, des)
  s <- summary(m)$coefficients
  rows[[length(rows) + 1]] <- data.frame(case = paste0(dn, "_twfe"), cohort = NA, wave = NA, term = "D",
                                         estimate = s["D", 1], se = s["D", 2], df = m$df.residual)
  for (g in sort(unique(x$first[!x$never]))) {
    base <- waves[match(g, waves) - 1]
    for (t in waves[waves != base]) {
      des2 <- update(des, post = as.numeric(wave == t), G = as.numeric(!never & first == g))
      des2 <- update(des2, Gpost = G * post)
      sub <- subset(des2, (never | first == g) & wave %in% c(base, t))
      m2 <- svyglm(victim ~ post + G + Gpost, sub)
      s2 <- summary(m2)$coefficients
      rows[[length(rows) + 1]] <- data.frame(case = paste0(dn, "_att"), cohort = g, wave = t, term = "Gpost",
                                             estimate = s2["Gpost", 1], se = s2["Gpost", 2], df = m2$df.residual)
    }
  }
}
out <- do.call(rbind, rows)
for (v in c("cohort", "wave", "estimate", "se", "df")) out[[v]] <- num(out[[v]])
write.csv(out, file.path(OUT, "r_did_staggered.csv"), row.names = FALSE, quote = c(1, 4))
cat("done\n")
