# A screener-only survey file with "don't know" / "refused" answers and a skip pattern, and what
# R survey estimates from it with item nonresponse left out of each item's base.
#
# R is the oracle, never the source.  Run from the repository root:
#   Rscript tests/reference/make_user_missing.R
# Writes tests/reference/data/user_missing.csv (the data; the Python test writes it as an SPSS
# file with 7, 8, 9 declared user-missing) and tests/reference/fixtures/r_user_missing.csv.
#
# Items (ESS/ICVS style): burg5 "burglary in the last 5 years" 1 yes / 2 no / 7 refused /
# 8 don't know / 9 no answer; burg12 "in the last 12 months" asked only when burg5 == 1 (blank
# when burg5 == 2: not asked, i.e. no; blank when burg5 is 7-9: unknown); safe 1-4 with 7-9.
# Design: strata, PSUs (2-4 per stratum), weights.

suppressPackageStartupMessages(library(survey))
options(survey.lonely.psu = "fail")
set.seed(20261206)
H <- 12
psu_per <- rep(c(2, 3, 4), length.out = H)
frame <- do.call(rbind, lapply(seq_len(H), function(h)
  data.frame(stratum = h, psu = seq_len(psu_per[h]))))
frame$m <- sample(15:40, nrow(frame), replace = TRUE)
d <- frame[rep(seq_len(nrow(frame)), frame$m), c("stratum", "psu")]
n <- nrow(d)
d$respid <- seq_len(n)
d$wt <- round(runif(n, 50, 400), 3)
d$region <- sample(1:4, n, replace = TRUE, prob = c(0.4, 0.3, 0.2, 0.1))
p5 <- c(0.15, 0.2, 0.25, 0.3)[d$region]
true5 <- rbinom(n, 1, p5)
true12 <- ifelse(true5 == 1, rbinom(n, 1, 0.5), 0)
burg5 <- ifelse(true5 == 1, 1, 2)
nr <- runif(n)
burg5[nr < 0.05] <- 8
burg5[nr >= 0.05 & nr < 0.07] <- 7
burg5[nr >= 0.07 & nr < 0.08] <- 9
burg12 <- ifelse(burg5 == 1, ifelse(true12 == 1, 1, 2), NA)
burg12[burg5 == 1 & runif(n) < 0.08] <- 8
d$burg5 <- burg5
d$burg12 <- burg12
safe <- sample(1:4, n, replace = TRUE, prob = c(0.3, 0.4, 0.2, 0.1))
safe[runif(n) < 0.06] <- 8
safe[runif(n) < 0.02] <- 7
d$safe <- safe
write.csv(d, file.path("tests", "reference", "data", "user_missing.csv"), row.names = FALSE, na = "")

# the estimates, each item's nonresponse out of its base
d$v5 <- ifelse(d$burg5 %in% 1, 1, ifelse(d$burg5 %in% 2, 0, NA))
d$v12 <- ifelse(d$burg12 %in% 1, 1, ifelse(d$burg12 %in% 2 | d$burg5 %in% 2, 0, NA))
d$safe01 <- ifelse(d$safe %in% 1:2, 1, ifelse(d$safe %in% 3:4, 0, NA))
des <- svydesign(ids = ~psu, strata = ~stratum, nest = TRUE, weights = ~wt, data = d)
rows <- list()
for (v in c("v5", "v12", "safe01")) {
  f <- as.formula(paste0("~", v))
  m <- svymean(f, des, na.rm = TRUE)
  rows[[length(rows) + 1]] <- data.frame(variable = v, domain = "overall", value = "all",
                                         estimate = coef(m)[[1]], se = SE(m)[[1]],
                                         n = sum(!is.na(d[[v]])))
  b <- svyby(f, ~region, des, svymean, na.rm = TRUE)
  rows[[length(rows) + 1]] <- data.frame(variable = v, domain = "region", value = as.character(b$region),
                                         estimate = b[[v]], se = b[["se"]],
                                         n = as.vector(tapply(!is.na(d[[v]]), d$region, sum)))
}
res <- do.call(rbind, rows)
write.csv(res, file.path("tests", "reference", "fixtures", "r_user_missing.csv"), row.names = FALSE)
cat(sprintf("R survey %s: %d rows, %d respondents\n", as.character(packageVersion("survey")), nrow(res), n))
